package depsync_test

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/carbonkit/carbon/cluster/depsync"
	"github.com/carbonkit/carbon/role"
)

// BenchmarkSync publishes a set of files (1,000 files, 100 MB by default;
// DEPSYNC_BENCH_FILES and DEPSYNC_BENCH_MB change it) from one manager to 8
// workers on loopback, each op a new revision with entirely new content,
// and reports the time from Publish until every worker has switched
// (ms-to-all-switched), a plain io.Copy of the same folder on this machine
// measured in the same op (ms-plain-copy), their ratio, and the bytes the
// manager sent over the set size (manager-bytes/set; a star from the
// manager would be 8).
func BenchmarkSync(b *testing.B) {
	files, mb := envInt("DEPSYNC_BENCH_FILES", 1000), envInt("DEPSYNC_BENCH_MB", 100)
	const workers = 8
	domain := "depsync.bench"
	m := startNode(b, nodeCfg{domain: domain, name: "m", role: role.Manager})
	waitActive(b, m)
	var ws []*tnode
	for i := range workers {
		ws = append(ws, startNode(b, nodeCfg{domain: domain, name: fmt.Sprintf("w%d", i), role: role.Worker, seed: m.seed(),
			opts: depsync.Options{PollInterval: time.Minute, Keep: 1}}))
	}
	waitConverged(b, workers+1, append(ws, m)...)

	var total, syncNs, copyNs time.Duration
	var sentRatio float64
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		src := filepath.Join(b.TempDir(), "set")
		size := randomTree(b, src, files, mb<<20/files, uint64(i)+100)
		sentBefore := m.s.Stats().BytesSent
		b.StartTimer()

		start := time.Now()
		rev, err := m.s.Publish(context.Background(), src)
		if err != nil {
			b.Fatal(err)
		}
		waitFor(b, 10*time.Minute, "every worker to switch", func() bool {
			for _, w := range ws {
				if w.s.Current() != rev {
					return false
				}
			}
			return true
		})
		d := time.Since(start)

		b.StopTimer()
		syncNs += d
		sentRatio += float64(m.s.Stats().BytesSent-sentBefore) / float64(size)
		cs := time.Now()
		plainCopy(b, src, filepath.Join(b.TempDir(), "copy"))
		copyNs += time.Since(cs)
		total++
		for _, w := range ws[:1] {
			sameFiles(b, src, w)
		}
		os.RemoveAll(src)
		b.StartTimer()
	}
	n := float64(total)
	b.ReportMetric(float64(syncNs.Milliseconds())/n, "ms-to-all-switched")
	b.ReportMetric(float64(copyNs.Milliseconds())/n, "ms-plain-copy")
	b.ReportMetric(float64(syncNs)/float64(copyNs), "sync/copy")
	b.ReportMetric(sentRatio/n, "manager-bytes/set")
}

// plainCopy copies every file of src to dst with io.Copy, file by file.
func plainCopy(b *testing.B, src, dst string) {
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
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
	if err != nil {
		b.Fatal(err)
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
