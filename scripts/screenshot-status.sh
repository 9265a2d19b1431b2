#!/bin/sh
# Renders the cluster status page in a real headless browser (Debian's
# chromium) and saves a screenshot to docs/status.png.
#
# It starts the pattern 3 topology (go run ./examples/patterns -pattern 3),
# waits for its tour to end (manager-1 is killed, manager-2 takes over),
# takes the screenshot of a worker's status page, checks the PNG, and stops
# the topology.
#
#   apt-get install -y chromium   # once
#   scripts/screenshot-status.sh [OUT.png]
set -eu
cd "$(dirname "$0")/.."
out=${1:-docs/status.png}
chrome=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$chrome" ]; then
	echo "no chromium: apt-get install -y chromium" >&2
	exit 1
fi
work=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill -INT "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

go build -o "$work/patterns" ./examples/patterns
"$work/patterns" -pattern 3 > "$work/out.txt" 2>&1 &
pid=$!
i=0
until grep -q "running; Ctrl-C to stop" "$work/out.txt"; do
	i=$((i + 1))
	if [ $i -gt 600 ] || ! kill -0 "$pid" 2>/dev/null; then
		cat "$work/out.txt" >&2
		echo "the patterns runner did not come up" >&2
		exit 1
	fi
	sleep 0.1
done
cat "$work/out.txt"
# The first status page printed is a live member's.
url=$(grep -o 'http://[0-9.:]*/status' "$work/out.txt" | head -n 1)
# A failed member stays in the view; give the page a moment to show it so.
sleep 2
"$chrome" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
	--disable-background-networking --disable-component-update --disable-sync \
	--hide-scrollbars --user-data-dir="$work/profile" \
	--screenshot="$out" --window-size=1200,900 "$url" 2>"$work/chromium.log" || {
	cat "$work/chromium.log" >&2
	exit 1
}
# A PNG starts with \x89PNG; an empty page would be a few KB at most.
if [ "$(head -c 4 "$out" | tail -c 3)" != "PNG" ] || [ "$(wc -c < "$out")" -lt 20000 ]; then
	echo "$out is not a rendered page" >&2
	exit 1
fi
echo "screenshot of $url written to $out"
