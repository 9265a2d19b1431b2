#!/usr/bin/env bash
# Measures the role Guard's share of a unary gRPC call in instructions
# (valgrind's callgrind), which, unlike time, does not depend on what else
# the machine is doing. Each figure is the difference between a run of
# 3N and a run of N iterations, divided by 2N, so setup cancels out.
# Needs valgrind (Debian's valgrind package).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)/role.test
go test -c -o "$bin" ./role
count() { # bench-regexp N -> instructions
  GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    "$bin" -test.run='^$' -test.bench="$1" -test.benchtime="$2x" 2>&1 | awk '/Collected/ {print $4}'
}
per_call() { # bench-regexp N
  local a b
  a=$(count "$1" "$2"); b=$(count "$1" $(($2 * 3)))
  echo $(( (b - a) / ($2 * 2) ))
}
none=$(per_call 'Unary/none$' 1000)
guard=$(per_call 'Unary/guard$' 1000)
icpt=$(per_call 'Interceptor/unary-read$' 1000000)
echo "instructions per unary call without the Guard: $none"
echo "instructions per unary call with the Guard:    $guard"
echo "instructions of the Guard's interceptor alone: $icpt"
awk -v i="$icpt" -v n="$none" 'BEGIN { printf "Guard share of a call: %.3f %%\n", 100 * i / n }'
