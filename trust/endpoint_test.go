package trust

import (
	"context"
	"net"
	"testing"
	"time"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lis
}

func TestVerifyProvesTheServersIdentity(t *testing.T) {
	ca := mustCA(t, "d.test")
	m1, w1 := mustSource(t, ca, mgr("m1")), mustSource(t, ca, wrk("w1"))
	id, leaf, err := verifyPair(t, m1, w1)
	if err != nil {
		t.Fatal(err)
	}
	if id != mgr("m1") || !leaf.Equal(m1.Leaf()) {
		t.Fatalf("proved %v", id)
	}
	// A worker's endpoint proves a worker, whatever its tags say.
	id, _, err = verifyPair(t, w1, m1)
	if err != nil || id.Role != RoleWorker {
		t.Fatalf("worker proved %v, %v", id, err)
	}
}

func TestVerifyRefusesForeignCA(t *testing.T) {
	ours, theirs := mustCA(t, "d.test"), mustCA(t, "d.test")
	if _, _, err := verifyPair(t, mustSource(t, theirs, mgr("rogue")), mustSource(t, ours, wrk("w1"))); err == nil {
		t.Fatal("a server with a foreign CA's certificate was verified")
	}
	other := mustCA(t, "other.test")
	if _, _, err := verifyPair(t, mustSource(t, other, Identity{"other.test", "mgt", RoleManager, "m1"}), mustSource(t, ours, wrk("w1"))); err == nil {
		t.Fatal("a server of another trust domain was verified")
	}
}

func TestVerifyRefusesAnExpiredServer(t *testing.T) {
	ca := mustCA(t, "d.test")
	m1 := mustSource(t, ca, mgr("m1"))
	m1.now = func() time.Time { return time.Now().Add(2 * 365 * 24 * time.Hour) }
	if _, _, err := verifyPair(t, m1, mustSource(t, ca, wrk("w1"))); err == nil {
		t.Fatal("a server whose certificate expired was verified")
	}
}

func TestIdentityServerCloses(t *testing.T) {
	ca := mustCA(t, "d.test")
	lis := listen(t)
	s := ServeIdentity(lis, mustSource(t, ca, mgr("m1")))
	// A client that connects and says nothing must not keep Close waiting
	// longer than the handshake timeout.
	c, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, _, err := Verify(ctx, lis.Addr().String(), mustSource(t, ca, wrk("w1"))); err == nil {
		t.Fatal("Verify succeeded against a closed server")
	}
}

// TestIdentityServerBoundsProofs: connections that stall beyond the bound
// are closed at once, and a proof still succeeds once they go.
func TestIdentityServerBoundsProofs(t *testing.T) {
	ca := mustCA(t, "d.test")
	lis := listen(t)
	s := ServeIdentity(lis, mustSource(t, ca, mgr("m1")))
	defer s.Close()
	var stall []net.Conn
	for range maxProofs {
		c, err := net.Dial("tcp", lis.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		stall = append(stall, c)
	}
	// Wait until the server holds all of them.
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == maxProofs {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server holds %d connections, want %d", n, maxProofs)
		}
		time.Sleep(time.Millisecond)
	}
	extra, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); err == nil {
		t.Fatal("a connection beyond the bound was served")
	}
	extra.Close()
	for _, c := range stall {
		c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, _, err := Verify(ctx, lis.Addr().String(), mustSource(t, ca, wrk("w1")))
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no proof after the stalled connections went: %v", err)
		}
	}
}
