//go:build linux

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

	"github.com/carbonkit/carbon/cluster"
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
	recovery := fs.Int("recovery", 0, "instead of -faults: kill -9 the active manager N times (restarting it after -down) and partition and heal the hosts N times, in turn")
	down := fs.Duration("down", 4*time.Second, "with -recovery: how long each kill or partition lasts")
	profile := fs.String("profile", "local", "the nodes' gossip timing: local, lan or wan (lan detects a failure in about 6 s: raise -down to 10s or more)")
	soak := fs.Duration("soak", 0, "run seed after seed for this long and print recovery percentiles")
	verbose := fs.Bool("v", false, "print each fault as it ends")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if *pattern < 0 || *pattern > 3 || (*pattern == 0 && *soak == 0) {
		fmt.Fprintf(stderr, "-pattern: want 1, 2 or 3, got %d\n", *pattern)
		return 2
	}
	if _, err := cluster.ParseProfile(*profile); err != nil {
		fmt.Fprintf(stderr, "-profile: %v\n", err)
		return 2
	}
	if *recovery < 0 {
		fmt.Fprintf(stderr, "-recovery: want a count of faults >= 1, got %d\n", *recovery)
		return 2
	}
	if *down <= 0 {
		fmt.Fprintf(stderr, "-down: want a duration > 0, got %v\n", *down)
		return 2
	}
	if *recovery > 0 {
		var clash []string
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "faults" || f.Name == "kinds" || f.Name == "active" {
				clash = append(clash, "-"+f.Name)
			}
		})
		if len(clash) > 0 {
			fmt.Fprintf(stderr, "-recovery makes its own schedule: drop %s\n", strings.Join(clash, " "))
			return 2
		}
	}
	if err := netlab.Require(); err != nil {
		fmt.Fprintln(stderr, err)
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
	var rec netlab.Recovery
	broken := false
	end := time.Now().Add(*soak)
	for i := 0; ; i++ {
		p := *pattern
		if p == 0 {
			p = 1 + i%3
		}
		o := netlab.Options{Pattern: p, Seed: *seed + int64(i), FaultCount: *count, Bin: bins, Dir: dir, Profile: *profile}
		if *verbose {
			o.Progress = stdout
		}
		switch {
		case *recovery > 0:
			faults, err := netlab.RecoverySchedule(netlab.RecoveryOptions{Seed: o.Seed, Nodes: nodes[p], Kills: *recovery, Heals: *recovery, Down: *down})
			if err != nil {
				fmt.Fprintln(stderr, err)
				return 2
			}
			o.Faults = faults
		case len(ks) > 0 || *active:
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
		rec.Add(res.Summary)
		if time.Now().After(end) || ctx.Err() != nil {
			break
		}
	}
	fmt.Fprint(stdout, rec)
	if broken {
		return 1
	}
	return 0
}

// nodes are the node names of each pattern, as netlab.Run lays them out.
var nodes = map[int][]string{
	1: {"manager-1", "worker-1", "worker-2"},
	2: {"manager-1", "manager-2", "worker-1", "worker-2"},
	3: {"manager-1", "manager-2", "manager-3", "worker-1", "worker-2"},
}

// schedule is netlab.Schedule with the kinds chosen and, with active, every
// targeted fault aimed at the active manager.
func schedule(p int, seed int64, count int, kinds []string, active bool) ([]netlab.Fault, error) {
	var managers []string
	for _, n := range nodes[p] {
		if strings.HasPrefix(n, "manager") {
			managers = append(managers, n)
		}
	}
	fs, err := netlab.Schedule(netlab.ScheduleOptions{Seed: seed, Nodes: nodes[p], Managers: managers, Count: count, Kinds: kinds})
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
