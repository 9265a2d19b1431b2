package clustertest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/cluster/clustertest"
)

// wallNow reads the real clock, which time.Now does not inside a
// synctest bubble (there it is the bubble's virtual clock).
func wallNow() time.Time {
	var tv syscall.Timeval
	if err := syscall.Gettimeofday(&tv); err != nil {
		panic(err)
	}
	return time.Unix(0, tv.Nano())
}

// cpuNow is the CPU time the process has used so far (user and system,
// all threads).
func cpuNow() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// stopwatch measures the wall time a phase of the benchmark takes, the
// protocol time (time.Now's: virtual inside a synctest bubble, the same
// as the wall time outside one) and the CPU time the process used, which
// is the variant's own as the variants run one at a time.
type stopwatch struct {
	wall, virtual time.Time
	cpu           time.Duration
}

func startWatch() stopwatch { return stopwatch{wallNow(), time.Now(), cpuNow()} }

func (s stopwatch) elapsed() (wall, virtual, cpu time.Duration) {
	return wallNow().Sub(s.wall), time.Since(s.virtual), cpuNow() - s.cpu
}

// bubbleEnv asks TestScaleInBubble, in a child process of BenchmarkScale,
// for one run: "profile nodes", the profile as its integer value.
const bubbleEnv = "CARBON_SCALE_IN_BUBBLE"

// bubbleLine starts the line where TestScaleInBubble prints its result.
const bubbleLine = "carbon-scale-in-bubble: "

// runInBubble runs the SDK on the in-memory network inside a synctest
// bubble, as a test of one's own can (see the package doc): time there is
// virtual and jumps whenever every node waits on a timer, so that the
// run's wall time is the CPU its gossip needs rather than the protocol's
// timers. synctest.Test needs a *testing.T, which a benchmark does not
// have: the run is TestScaleInBubble in a child process (this test binary
// again), which prints its figures as one line of JSON.
func runInBubble(b *testing.B, prof cluster.Profile, n int) scaleResult {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestScaleInBubble$", "-test.count=1",
		"-test.timeout="+(4*scaleTimeout(n)).String())
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d %d", bubbleEnv, int(prof), n))
	out, err := cmd.CombinedOutput()
	for line := range strings.Lines(string(out)) {
		js, ok := strings.CutPrefix(line, bubbleLine)
		if !ok {
			continue
		}
		var r scaleResult
		if err := json.Unmarshal([]byte(js), &r); err != nil {
			return scaleResult{Note: fmt.Sprintf("synctest run: %v in %q", err, js)}
		}
		return r
	}
	out = bytes.TrimSpace(out)
	if len(out) > 2000 {
		out = out[len(out)-2000:]
	}
	return scaleResult{Note: fmt.Sprintf("synctest run printed no result (%v): %s", err, out)}
}

// TestScaleInBubble is BenchmarkScale's memnet-synctest variant, run in a
// child process by runInBubble; it is skipped otherwise.
func TestScaleInBubble(t *testing.T) {
	spec := os.Getenv(bubbleEnv)
	if spec == "" {
		t.Skip("run by BenchmarkScale (memnet-synctest)")
	}
	f := strings.Fields(spec)
	if len(f) != 2 {
		t.Fatalf("%s=%q: want \"profile nodes\"", bubbleEnv, spec)
	}
	prof, err1 := strconv.Atoi(f[0])
	n, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		t.Fatalf("%s=%q: want two integers", bubbleEnv, spec)
	}
	synctest.Test(t, func(t *testing.T) {
		js, err := json.Marshal(runSDK(t, clustertest.InMemory, cluster.Profile(prof), n))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println(bubbleLine + string(js))
	})
}
