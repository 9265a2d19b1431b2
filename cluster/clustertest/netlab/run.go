//go:build linux

package netlab

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Options configures Run.
type Options struct {
	// Pattern is the Carbon deployment pattern, 1, 2 or 3.
	Pattern int
	// Seed picks the faults; the same seed replays the same schedule.
	Seed int64
	// Faults is the schedule; nil means Schedule with Seed and FaultCount.
	Faults []Fault
	// FaultCount is how many random faults (default: one of each kind).
	FaultCount int
	// Bin holds the example binaries (Build makes them).
	Bin Binaries
	// Dir receives the nodes' logs and records; it must exist.
	Dir string
	// Profile is the nodes' gossip timing. Default "local".
	Profile string
	// RecoverBound is how long the lab waits, after each fault is undone,
	// for one view again and a successful write. Default 15 s.
	RecoverBound time.Duration
	// ConvergeBound is the bound of the convergence promises. Default 15 s.
	ConvergeBound time.Duration
	// Progress, when set, receives a line per step.
	Progress io.Writer
}

// RunResult is a run's history, the checker's report and the summary.
type RunResult struct {
	History History
	Report  Report
	Summary Summary
	// NodeRecords is false when the servers keep no record of their own
	// (their binaries have no -history flag).
	NodeRecords bool
}

// lab is one running pattern.
type lab struct {
	o        Options
	net      *Net
	specs    []nodeSpec
	quorum   bool
	procs    map[string]*Proc
	cl       *client
	managers []string
	workers  []string
	history  bool

	mu     sync.Mutex
	ops    []Op
	starts map[string][]time.Time
	pref   string // the manager that last acknowledged a write
}

func (l *lab) logf(format string, args ...any) {
	if l.o.Progress != nil {
		fmt.Fprintf(l.o.Progress, "netlab p%d seed %d: %s\n", l.o.Pattern, l.o.Seed, fmt.Sprintf(format, args...))
	}
}

// Run starts the pattern's nodes as processes in their own namespaces,
// writes through the managers and reads through the workers while the
// faults are injected one after another, waits for the cluster to settle,
// and checks the history. The namespaces and processes are gone when it
// returns, whatever happened; an error means the lab itself failed (a
// broken promise is in RunResult.Report instead).
func Run(ctx context.Context, o Options) (res RunResult, err error) {
	specs, quorum, err := pattern(o.Pattern)
	if err != nil {
		return res, err
	}
	if o.Profile == "" {
		o.Profile = "local"
	}
	if o.RecoverBound <= 0 {
		o.RecoverBound = 15 * time.Second
	}
	if o.ConvergeBound <= 0 {
		o.ConvergeBound = 15 * time.Second
	}
	l := &lab{o: o, specs: specs, quorum: quorum, procs: map[string]*Proc{}, starts: map[string][]time.Time{}}
	var names []string
	for _, s := range specs {
		names = append(names, s.name)
		if s.role == "manager" {
			l.managers = append(l.managers, s.name)
		} else {
			l.workers = append(l.workers, s.name)
		}
	}
	faults := o.Faults
	if faults == nil {
		if faults, err = Schedule(ScheduleOptions{Seed: o.Seed, Nodes: names, Managers: l.managers, Count: o.FaultCount}); err != nil {
			return res, err
		}
	}
	if l.net, err = NewNet(ctx); err != nil {
		return res, err
	}
	defer l.net.Close()
	for _, n := range append(slices.Clone(names), "client") {
		if _, err := l.net.AddHost(ctx, n); err != nil {
			return res, err
		}
	}
	dial, err := l.net.Dialer("client")
	if err != nil {
		return res, err
	}
	l.cl = newClient(dial, func(n string) string { return l.ip(n) + ":" + httpPort }, time.Second)
	defer l.cl.close()
	res.NodeRecords = HasHistoryFlag(ctx, o.Bin.Manager) && HasHistoryFlag(ctx, o.Bin.Worker)
	l.history = res.NodeRecords

	started := time.Now()
	for _, s := range specs {
		bin := o.Bin.Worker
		if s.role == "manager" {
			bin = o.Bin.Manager
		}
		hist := ""
		if l.history {
			hist = filepath.Join(o.Dir, s.name+".history.jsonl")
		}
		p, err := l.net.Command(s.name, filepath.Join(o.Dir, s.name+".log"), bin, nodeArgs(s, specs, l.ip, quorum, o.Profile, hist)...)
		if err != nil {
			return res, err
		}
		l.procs[s.name] = p
		if err := l.start(s.name); err != nil {
			return res, err
		}
	}
	defer func() {
		for _, p := range l.procs {
			_ = p.Kill()
		}
	}()
	if _, ok := l.waitOneView(ctx, time.Now(), 30*time.Second); !ok {
		return res, fmt.Errorf("netlab: pattern %d did not come up with one view within 30s (logs in %s)", o.Pattern, o.Dir)
	}
	l.logf("up in %v", time.Since(started).Round(time.Millisecond))

	cctx, stopClients := context.WithCancel(ctx)
	var clients sync.WaitGroup
	clients.Go(func() { l.writer(cctx, "k", true) })
	clients.Go(func() { l.writer(cctx, "r", false) })
	clients.Go(func() { l.reader(cctx) })
	defer func() { stopClients(); clients.Wait() }()

	var records []FaultRecord
	for _, f := range faults {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		rec, err := l.inject(ctx, f)
		if err != nil {
			return res, err
		}
		records = append(records, rec)
		l.logf("%s: writes back after %v, one view %v after it ended", rec.Fault, fmtDur(rec.Recovered), fmtDur(rec.ViewAfter))
	}
	faultsEnd := time.Now()
	if len(records) > 0 {
		faultsEnd = records[len(records)-1].End
	}
	stopClients()
	clients.Wait()

	h := History{Seed: o.Seed, Pattern: o.Pattern, Roles: map[string]string{}, Quorum: quorum, Faults: records, FaultsEnd: faultsEnd}
	for _, s := range specs {
		h.Roles[s.name] = s.role
	}
	l.mu.Lock()
	h.Ops, h.Starts = slices.Clone(l.ops), maps.Clone(l.starts)
	l.mu.Unlock()
	h.Finals = l.settle(ctx, h, o.ConvergeBound)
	if l.history {
		for _, s := range specs {
			evs, err := readNodeFile(filepath.Join(o.Dir, s.name+".history.jsonl"))
			if err != nil {
				return res, err
			}
			h.Nodes = append(h.Nodes, evs...)
		}
	}
	res.History = h
	res.Report = Check(h, CheckOptions{ConvergeBound: o.ConvergeBound, NoCatchUp: true})
	res.Summary = summarize(h, res.Report, time.Since(started))
	// What the strict promise would say: the example catalog's gap.
	for _, v := range Check(h, CheckOptions{ConvergeBound: o.ConvergeBound}).Violations {
		if !slices.Contains(res.Report.Violations, v) {
			res.Summary.NotCarried = append(res.Summary.NotCarried, v)
		}
	}
	return res, nil
}

func readNodeFile(path string) ([]NodeEvent, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadNodeHistory(f)
}

func (l *lab) ip(node string) string {
	h, _ := l.net.Host(node)
	return h.IP
}

func (l *lab) start(node string) error {
	l.mu.Lock()
	l.starts[node] = append(l.starts[node], time.Now())
	l.mu.Unlock()
	return l.procs[node].Start()
}

// live are the nodes running and not frozen.
func (l *lab) live() []string {
	var out []string
	for _, s := range l.specs {
		if p := l.procs[s.name]; p.Running() && !p.Stopped() {
			out = append(out, s.name)
		}
	}
	return out
}

// expected is, for each domain, the live nodes that are members of it.
func (l *lab) expected(live []string) map[string][]string {
	m := map[string][]string{}
	for _, s := range l.specs {
		if !slices.Contains(live, s.name) {
			continue
		}
		m[s.domain] = append(m[s.domain], s.name)
		if s.follow != "" {
			m[s.follow] = append(m[s.follow], s.name)
		}
	}
	return m
}

// waitOneView waits until every live node sees one view (asked after
// after), and returns when.
func (l *lab) waitOneView(ctx context.Context, after time.Time, bound time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(bound)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		live := l.live()
		s := l.cl.observe(ctx, live, false)
		if s.at.After(after) && s.oneView(l.expected(live)) && oneActive(s) {
			return s.at, true
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
	return time.Time{}, false
}

// oneActive: exactly one node in the snapshot is writable.
func oneActive(s snapshot) bool {
	n := 0
	for _, f := range s.finals {
		if f.Writable {
			n++
		}
	}
	return n == 1
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func fmtDur(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return d.Round(time.Millisecond).String()
}
