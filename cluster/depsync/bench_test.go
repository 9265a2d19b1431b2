package depsync_test

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/carbonkit/carbon/cluster/depsync"
	"github.com/carbonkit/carbon/role"
)

// BenchmarkSync publishes a set of files (1,000 files, 100 MB by default;
// DEPSYNC_BENCH_FILES and DEPSYNC_BENCH_MB change it) from one manager to 8
// workers over gRPC on 127.0.0.1, each op a new revision with entirely new
// content (DEPSYNC_BENCH_PARALLEL and DEPSYNC_BENCH_FANOUT set the workers'
// Options.Parallel and FanOut). In the same op it makes eight plain copies
// of the set in parallel, one per worker: the physical floor of the work
// on one disk. It reports the time from Publish until every worker has
// switched (ms-to-all-switched; of which ms-publish until Publish returned
// and ms-to-first-switched until the first worker switched), the time of
// the eight copies (ms-eight-copies), their ratio (sync/eight-copies), the
// ratio of the CPU time the process spent in either phase
// (cpu-sync/eight-copies: the machine may be shared; cpu-ms-sync and
// cpu-ms-copies are the CPU times themselves), how many cores were
// busy in either phase (cores-busy-sync, cores-busy-copies: 2 here means
// CPU-bound), and the manager's egress: blob bytes it sent over the set
// size (manager-bytes/set; a star from the manager would be 8) and over set
// size times workers (egress/set/worker).
func BenchmarkSync(b *testing.B) {
	files, mb := envInt("DEPSYNC_BENCH_FILES", 1000), envInt("DEPSYNC_BENCH_MB", 100)
	const workers = 8
	domain := "depsync.bench"
	m := startNode(b, nodeCfg{domain: domain, name: "m", role: role.Manager})
	waitActive(b, m)
	var ws []*tnode
	for i := range workers {
		ws = append(ws, startNode(b, nodeCfg{domain: domain, name: fmt.Sprintf("w%d", i), role: role.Worker, seed: m.seed(),
			opts: depsync.Options{PollInterval: time.Minute, Keep: 1, Parallel: envInt("DEPSYNC_BENCH_PARALLEL", 0), FanOut: envInt("DEPSYNC_BENCH_FANOUT", 0)}}))
	}
	waitConverged(b, workers+1, append(ws, m)...)

	var total, syncNs, pubNs, firstNs, copyNs, cpuSync, cpuCopy time.Duration
	var sentRatio float64
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		src := filepath.Join(b.TempDir(), "set")
		size := randomTree(b, src, files, mb<<20/files, uint64(i)+100)
		sentBefore := m.s.Stats().BytesSent
		// The set and what earlier ops left (the copies) go to disk before
		// the op: the flush a node makes before it switches then writes the
		// sync's own work only, not the benchmark's.
		syscall.Sync()
		b.StartTimer()

		cpu0 := cpuTime(b)
		start := time.Now()
		rev, err := m.s.Publish(context.Background(), src)
		if err != nil {
			b.Fatal(err)
		}
		pubNs += time.Since(start)
		var first time.Duration
		waitFor(b, 10*time.Minute, "every worker to switch", func() bool {
			n := 0
			for _, w := range ws {
				if w.s.Current() == rev {
					n++
				}
			}
			if n > 0 && first == 0 {
				first = time.Since(start)
			}
			return n == len(ws)
		})
		firstNs += first
		d := time.Since(start)
		cpu1 := cpuTime(b)

		b.StopTimer()
		syncNs += d
		sentRatio += float64(m.s.Stats().BytesSent-sentBefore) / float64(size)
		dst := b.TempDir()
		cs := time.Now()
		eightCopies(b, src, dst, workers)
		copyNs += time.Since(cs)
		cpuSync += cpu1 - cpu0
		cpuCopy += cpuTime(b) - cpu1
		os.RemoveAll(dst)
		total++
		for _, w := range ws[:1] {
			sameFiles(b, src, w)
		}
		os.RemoveAll(src)
		b.StartTimer()
	}
	n := float64(total)
	b.ReportMetric(float64(syncNs.Milliseconds())/n, "ms-to-all-switched")
	b.ReportMetric(float64(pubNs.Milliseconds())/n, "ms-publish")
	b.ReportMetric(float64(firstNs.Milliseconds())/n, "ms-to-first-switched")
	b.ReportMetric(float64(copyNs.Milliseconds())/n, "ms-eight-copies")
	b.ReportMetric(float64(syncNs)/float64(copyNs), "sync/eight-copies")
	b.ReportMetric(float64(cpuSync)/float64(cpuCopy), "cpu-sync/eight-copies")
	b.ReportMetric(float64(cpuSync.Milliseconds())/n, "cpu-ms-sync")
	b.ReportMetric(float64(cpuCopy.Milliseconds())/n, "cpu-ms-copies")
	b.ReportMetric(float64(cpuSync)/float64(syncNs), "cores-busy-sync")
	b.ReportMetric(float64(cpuCopy)/float64(copyNs), "cores-busy-copies")
	b.ReportMetric(sentRatio/n, "manager-bytes/set")
	b.ReportMetric(sentRatio/n/workers, "egress/set/worker")
}

// cpuTime is the CPU time (user and system) the process used so far: on a
// shared machine it tells the work done apart from the waiting for CPUs.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// eightCopies makes k plain copies of src under dst in parallel.
func eightCopies(b *testing.B, src, dst string, k int) {
	var wg sync.WaitGroup
	errs := make([]error, k)
	for i := range k {
		wg.Go(func() { errs[i] = plainCopy(src, filepath.Join(dst, strconv.Itoa(i))) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
}

// plainCopy copies every file of src to dst with io.Copy, file by file.
func plainCopy(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		o, err := os.Create(out)
		if err != nil {
			return err
		}
		if _, err := io.Copy(o, in); err != nil {
			o.Close()
			return err
		}
		return o.Close()
	})
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v != 0 {
		return v
	}
	return def
}
