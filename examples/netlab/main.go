package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/carbonkit/carbon/cluster/clustertest/netlab"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("netlab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pattern := fs.Int("pattern", 2, "deployment pattern: 1, 2 or 3 (with -soak: 0 cycles through all three)")
	seed := fs.Int64("seed", 0, "seed of the fault schedule (default: the clock); a run replays from its seed")
	count := fs.Int("faults", 5, "faults per run (the first five are one of each kind)")
	kinds := fs.String("kinds", "", "comma-separated fault kinds: kill, pause, partition, cut, isolate (default: all)")
	active := fs.Bool("active", false, "aim every kill, pause and isolate at the active manager")
	soak := fs.Duration("soak", 0, "run seed after seed for this long and print recovery percentiles")
	verbose := fs.Bool("v", false, "print each fault as it ends")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if err := netlab.Require(); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if *pattern < 0 || *pattern > 3 || (*pattern == 0 && *soak == 0) {
		fmt.Fprintf(stderr, "-pattern: want 1, 2 or 3, got %d\n", *pattern)
		return 2
	}
	var ks []string
	for k := range strings.SplitSeq(*kinds, ",") {
		if k = strings.TrimSpace(k); k != "" {
			ks = append(ks, k)
		}
	}
	if *seed == 0 {
		*seed = time.Now().UnixNano()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "netlab-")
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	fmt.Fprintf(stdout, "netlab: logs and binaries in %s\n", dir)
	bins, err := netlab.Build(ctx, dir)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	var killActive, heal []time.Duration
	broken := false
	end := time.Now().Add(*soak)
	for i := 0; ; i++ {
		p := *pattern
		if p == 0 {
			p = 1 + i%3
		}
		o := netlab.Options{Pattern: p, Seed: *seed + int64(i), FaultCount: *count, Bin: bins, Dir: dir}
		if *verbose {
			o.Progress = stdout
		}
		if len(ks) > 0 || *active {
			faults, err := schedule(p, o.Seed, *count, ks, *active)
			if err != nil {
				fmt.Fprintln(stderr, err)
				return 2
			}
			o.Faults = faults
		}
		runDir := fmt.Sprintf("%s/run-%d", dir, i)
		if err := os.Mkdir(runDir, 0o755); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		o.Dir = runDir
		res, err := netlab.Run(ctx, o)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		fmt.Fprint(stdout, res.Summary)
		if !res.NodeRecords {
			fmt.Fprintln(stdout, "  (the servers have no -history flag: only what the clients saw is checked)")
		}
		broken = broken || len(res.Report.Violations) > 0
		for _, f := range res.History.Faults {
			if f.Kind == netlab.FaultKill && f.WasActive && f.Recovered >= 0 {
				killActive = append(killActive, f.Recovered)
			}
			if (f.Kind == netlab.FaultPartition || f.Kind == netlab.FaultIsolate || f.Kind == netlab.FaultCut) && f.ViewAfter >= 0 {
				heal = append(heal, f.ViewAfter)
			}
		}
		if time.Now().After(end) || ctx.Err() != nil {
			break
		}
	}
	fmt.Fprintf(stdout, "writes back after kill -9 of the active manager: %s\n", percentiles(killActive))
	fmt.Fprintf(stdout, "one view after a heal: %s\n", percentiles(heal))
	if broken {
		return 1
	}
	return 0
}

// schedule is netlab.Schedule with the kinds chosen and, with active, every
// targeted fault aimed at the active manager.
func schedule(p int, seed int64, count int, kinds []string, active bool) ([]netlab.Fault, error) {
	nodes := map[int][]string{
		1: {"manager-1", "worker-1", "worker-2"},
		2: {"manager-1", "manager-2", "worker-1", "worker-2"},
		3: {"manager-1", "manager-2", "manager-3", "worker-1", "worker-2"},
	}[p]
	var managers []string
	for _, n := range nodes {
		if strings.HasPrefix(n, "manager") {
			managers = append(managers, n)
		}
	}
	fs, err := netlab.Schedule(netlab.ScheduleOptions{Seed: seed, Nodes: nodes, Managers: managers, Count: count, Kinds: kinds})
	if err != nil {
		return nil, err
	}
	if active {
		for i := range fs {
			if slices.Contains([]string{netlab.FaultKill, netlab.FaultPause, netlab.FaultIsolate}, fs[i].Kind) {
				fs[i].Target = netlab.ActiveTarget
			}
		}
	}
	return fs, nil
}

func percentiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no samples"
	}
	slices.Sort(ds)
	p := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v", len(ds), p(0.5).Round(time.Millisecond), p(0.99).Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
}
