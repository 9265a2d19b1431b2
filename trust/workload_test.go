package trust_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carbonkit/carbon/internal/trusttest"
	"github.com/carbonkit/carbon/trust"
)

// TestWorkloadAPISource: a Source from a Workload API holds the SVID the
// API gives, proves it to a peer with file material from the same CA, and
// follows a rotation (new leaf, Generation up); an update that is not
// valid is reported and the last good certificate kept; Close stops it.
func TestWorkloadAPISource(t *testing.T) {
	ca := trusttest.CA(t, "d.test")
	m1 := trust.Identity{Domain: "d.test", SubDomain: "mgt", Role: trust.RoleManager, Name: "m1"}
	w := trusttest.StartWorkloadAPI(t)
	first := w.Push(t, ca, m1)
	var mu sync.Mutex
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src, err := trust.FromWorkloadAPI(ctx, w.Addr, func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if src.Identity() != m1 || !src.Leaf().Equal(first.Chain[0]) || src.Generation() != 1 {
		t.Fatalf("source holds %s (generation %d), want the pushed m1", src.Identity(), src.Generation())
	}

	// A peer with file material proves m1's identity over mutual TLS.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := trust.ServeIdentity(lis, src)
	defer srv.Close()
	id, leaf, err := trust.Verify(ctx, lis.Addr().String(), trusttest.Member(t, ca, "worker", trust.RoleWorker, "w1"))
	if err != nil || id != m1 || !leaf.Equal(first.Chain[0]) {
		t.Fatalf("proof of the workload API's identity: %s, %v", id, err)
	}

	// Rotation: a new leaf for the same identity.
	second := w.Push(t, ca, m1)
	waitUntil(t, "the rotated certificate", func() bool { return src.Generation() == 2 && src.Leaf().Equal(second.Chain[0]) })

	// An expired certificate is refused; the source keeps the second.
	w.Push(t, ca, m1, trust.ValidBetween(time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)))
	waitUntil(t, "the expired update reported", func() bool { mu.Lock(); defer mu.Unlock(); return len(errs) == 1 })
	mu.Lock()
	if msg := errs[0].Error(); !strings.Contains(msg, "keeping the current certificate") || !strings.Contains(msg, "expired") {
		t.Errorf("error %q: want it to say the update was refused because the certificate expired", msg)
	}
	mu.Unlock()
	if src.Generation() != 2 || !src.Leaf().Equal(second.Chain[0]) {
		t.Errorf("after a refused update: generation %d, leaf changed=%v", src.Generation(), !src.Leaf().Equal(second.Chain[0]))
	}
	if err := src.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestWorkloadAPIUnreachable: with no Workload API at the address,
// FromWorkloadAPI fails once ctx ends, naming the address.
func TestWorkloadAPIUnreachable(t *testing.T) {
	addr := "unix://" + filepath.Join(t.TempDir(), "none.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := trust.FromWorkloadAPI(ctx, addr, nil)
	if err == nil || !strings.Contains(err.Error(), addr) || !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("error %v: want one naming %s after the deadline", err, addr)
	}
}

// waitUntil polls cond until it holds, failing t after 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
