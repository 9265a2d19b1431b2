package memnet

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/carbonkit/carbon/internal/wait"
	"github.com/hashicorp/memberlist"
	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine outlives the tests. It is
// goleak.VerifyTestMain with a longer grace: memberlist's Shutdown does not
// wait for its goroutines, and on a loaded machine under -race they can
// take seconds to notice, more than goleak's own retries allow.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(15 * time.Second)
		err := goleak.Find()
		for err != nil && time.Now().Before(deadline) {
			err = goleak.Find()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	if wait.For(timeout, 10*time.Millisecond, cond) != nil {
		tb.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

func newTransports(t *testing.T, n *Network, count int) []*Transport {
	t.Helper()
	ts := make([]*Transport, count)
	for i := range ts {
		tr, err := n.NewTransport("")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tr.Shutdown() })
		ts[i] = tr
	}
	return ts
}

// recv returns the next packet on tr, or nil if none comes soon.
func recv(tr *Transport, within time.Duration) *memberlist.Packet {
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case p := <-tr.PacketCh():
		return p
	case <-timer.C:
		return nil
	}
}

// noPacket is how long we wait to be fairly sure that a packet is dropped
// when latency is zero and delivery therefore synchronous.
const noPacket = 20 * time.Millisecond

func TestAddresses(t *testing.T) {
	n := New()
	defer n.Close()
	a, err := n.NewTransport("")
	if err != nil {
		t.Fatal(err)
	}
	if a.Addr() != "10.0.0.1:7946" {
		t.Errorf("first allocated address = %s", a.Addr())
	}
	if _, err := n.NewTransport("10.0.0.1:7946"); !errors.Is(err, ErrAddrInUse) {
		t.Errorf("duplicate address: err = %v, want ErrAddrInUse", err)
	}
	if _, err := n.NewTransport("node-1:7946"); !errors.Is(err, ErrBadAddr) {
		t.Errorf("host name: err = %v, want ErrBadAddr", err)
	}
	b, err := n.NewTransport("")
	if err != nil || b.Addr() != "10.0.0.2:7946" {
		t.Fatalf("second address = %v, %v", b.Addr(), err)
	}
	// A shut down transport frees its address for a restarted process.
	_ = a.Shutdown()
	if _, err := a.WriteTo([]byte("x"), b.Addr()); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteTo after Shutdown: err = %v", err)
	}
	a2, err := n.NewTransport("10.0.0.1:7946")
	if err != nil {
		t.Fatalf("reuse after Shutdown: %v", err)
	}
	if _, err := b.WriteTo([]byte("hi"), "10.0.0.1:7946"); err != nil {
		t.Fatal(err)
	}
	if p := recv(a2, time.Second); p == nil || string(p.Buf) != "hi" {
		t.Errorf("new transport at reused address got %v", p)
	}
	// Allocation skips addresses in use and .0/.255.
	for range 300 {
		if _, err := n.NewTransport(""); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFinalAdvertiseAddr(t *testing.T) {
	n := New()
	defer n.Close()
	tr, _ := n.NewTransport("10.1.2.3:8000")
	for _, tc := range []struct {
		ip   string
		port int
		ok   bool
	}{
		{"", 0, true},
		{"", 7946, true}, // memberlist's default AdvertisePort with no IP
		{"10.1.2.3", 8000, true},
		{"10.1.2.3", 0, true},
		{"10.1.2.3", 7946, false},
		{"10.9.9.9", 8000, false},
	} {
		ip, port, err := tr.FinalAdvertiseAddr(tc.ip, tc.port)
		if !tc.ok {
			if !errors.Is(err, ErrAdvertise) {
				t.Errorf("FinalAdvertiseAddr(%q, %d): err = %v, want ErrAdvertise", tc.ip, tc.port, err)
			}
			continue
		}
		if err != nil || ip.String() != "10.1.2.3" || port != 8000 {
			t.Errorf("FinalAdvertiseAddr(%q, %d) = %v, %d, %v", tc.ip, tc.port, ip, port, err)
		}
	}
}

func TestPackets(t *testing.T) {
	n := New()
	defer n.Close()
	ts := newTransports(t, n, 2)
	a, b := ts[0], ts[1]
	buf := []byte("ping")
	if _, err := a.WriteTo(buf, b.Addr()); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXX") // the network must have copied it
	p := recv(b, time.Second)
	if p == nil || string(p.Buf) != "ping" || p.From.String() != a.Addr() || p.Timestamp.IsZero() {
		t.Fatalf("got %+v", p)
	}
	// No receiver: lost without error, like UDP.
	if _, err := a.WriteTo(buf, "10.9.9.9:1"); err != nil {
		t.Errorf("WriteTo nowhere: %v", err)
	}
	// A full queue drops instead of blocking the sender.
	for range packetQueue + 10 {
		if _, err := a.WriteTo(buf, b.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	s := n.Stats()
	if s.PacketsSent != packetQueue+12 || s.PacketsDelivered != packetQueue+1 || s.PacketsDropped != 11 {
		t.Errorf("stats = %+v", s)
	}
}

// The network has no MTU: a packet of MaxPacket bytes arrives whole, a
// larger one is refused with ErrTooLarge, and the largest sent is counted.
func TestPacketSize(t *testing.T) {
	n := New()
	defer n.Close()
	ts := newTransports(t, n, 2)
	a, b := ts[0], ts[1]
	if got := a.PacketSize(); got != MaxPacket {
		t.Fatalf("PacketSize = %d, want %d", got, MaxPacket)
	}
	big := make([]byte, MaxPacket)
	big[MaxPacket-1] = 7
	if _, err := a.WriteTo(big, b.Addr()); err != nil {
		t.Fatal(err)
	}
	if p := recv(b, time.Second); p == nil || len(p.Buf) != MaxPacket || p.Buf[MaxPacket-1] != 7 {
		t.Fatalf("a %d-byte packet did not arrive whole", MaxPacket)
	}
	_, err := a.WriteTo(make([]byte, MaxPacket+1), b.Addr())
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), strconv.Itoa(MaxPacket+1)) {
		t.Fatalf("WriteTo of %d bytes: %v, want ErrTooLarge naming the size", MaxPacket+1, err)
	}
	if p := recv(b, noPacket); p != nil {
		t.Fatalf("the oversized packet arrived (%d bytes)", len(p.Buf))
	}
	if s := n.Stats(); s.LargestPacket != MaxPacket || s.PacketsSent != 1 {
		t.Fatalf("stats = %+v, want LargestPacket %d and 1 packet sent", s, MaxPacket)
	}
}

func TestLossIsSeeded(t *testing.T) {
	pattern := func() []bool {
		n := New(WithSeed(42), WithLoss(0.3))
		defer n.Close()
		a, _ := n.NewTransport("")
		b, _ := n.NewTransport("")
		var got []bool
		for range 200 {
			before := n.Stats().PacketsLost
			_, _ = a.WriteTo([]byte("x"), b.Addr())
			got = append(got, n.Stats().PacketsLost > before)
			for len(b.PacketCh()) > 0 {
				<-b.PacketCh()
			}
		}
		return got
	}
	p1, p2 := pattern(), pattern()
	lost := 0
	for i := range p1 {
		if p1[i] != p2[i] {
			t.Fatalf("packet %d: loss differs between runs with the same seed", i)
		}
		if p1[i] {
			lost++
		}
	}
	if lost < 30 || lost > 90 {
		t.Errorf("lost %d of 200 at 30%% loss", lost)
	}
}

func TestFaultsOnPackets(t *testing.T) {
	n := New()
	defer n.Close()
	ts := newTransports(t, n, 3)
	a, b, c := ts[0], ts[1], ts[2]
	passes := func(from, to *Transport) bool {
		_, _ = from.WriteTo([]byte("x"), to.Addr())
		return recv(to, noPacket) != nil
	}
	check := func(stage string, want map[[2]*Transport]bool) {
		t.Helper()
		for pair, w := range want {
			if got := passes(pair[0], pair[1]); got != w {
				t.Errorf("%s: %s -> %s passes = %v, want %v", stage, pair[0].Addr(), pair[1].Addr(), got, w)
			}
		}
	}
	n.Crash(b.Addr())
	check("crash b", map[[2]*Transport]bool{{a, b}: false, {b, a}: false, {a, c}: true})
	n.Restart(b.Addr())
	check("restart b", map[[2]*Transport]bool{{a, b}: true, {b, a}: true})

	n.Partition([]string{a.Addr()}) // b and c form the implicit group
	check("isolate a", map[[2]*Transport]bool{{a, b}: false, {c, a}: false, {b, c}: true})
	n.Partition([]string{a.Addr(), b.Addr()}, []string{c.Addr()})
	check("ab|c", map[[2]*Transport]bool{{a, b}: true, {b, c}: false, {c, a}: false})
	n.Heal()
	check("heal", map[[2]*Transport]bool{{a, c}: true, {c, b}: true})

	n.Cut(a.Addr(), b.Addr())
	check("cut a->b", map[[2]*Transport]bool{{a, b}: false, {b, a}: true, {a, c}: true})
	n.Mend(a.Addr(), b.Addr())
	check("mend", map[[2]*Transport]bool{{a, b}: true})
	n.Cut(a.Addr(), b.Addr())
	n.Heal()
	check("heal cut", map[[2]*Transport]bool{{a, b}: true})
}

func TestLatency(t *testing.T) {
	const d = 30 * time.Millisecond
	n := New(WithLatency(d))
	defer n.Close()
	ts := newTransports(t, n, 2)
	a, b := ts[0], ts[1]
	start := time.Now()
	for i := range 100 {
		_, _ = a.WriteTo([]byte{byte(i)}, b.Addr())
	}
	for i := range 100 {
		p := recv(b, time.Second)
		if p == nil {
			t.Fatalf("packet %d not delivered", i)
		}
		if p.Buf[0] != byte(i) {
			t.Fatalf("packet %d arrived as %d: reordered at constant latency", i, p.Buf[0])
		}
		if el := p.Timestamp.Sub(start); el < d {
			t.Fatalf("packet delivered after %v, want >= %v", el, d)
		}
	}
	// A packet in flight when the receiver crashes is lost.
	_, _ = a.WriteTo([]byte("late"), b.Addr())
	n.Crash(b.Addr())
	if p := recv(b, 3*d); p != nil {
		t.Errorf("packet delivered to a node crashed while it was in flight")
	}
	n.Restart(b.Addr())

	// A dial waits one round trip, and times out if that is too long.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case c := <-b.StreamCh():
				_ = c.Close()
			case <-stop:
				return
			}
		}
	}()
	start = time.Now()
	c, err := a.DialTimeout(b.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if el := time.Since(start); el < 2*d {
		t.Errorf("dial took %v, want >= %v", el, 2*d)
	}
	_, err = a.DialTimeout(b.Addr(), d)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("dial with timeout below the RTT: err = %v, want a timeout", err)
	}
}

// pair dials b from a and returns both ends.
func pair(t *testing.T, a, b *Transport) (net.Conn, net.Conn) {
	t.Helper()
	ca, err := a.DialTimeout(b.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case cb := <-b.StreamCh():
		t.Cleanup(func() { _ = ca.Close(); _ = cb.Close() })
		return ca, cb
	case <-time.After(time.Second):
		t.Fatal("no stream accepted")
		return nil, nil
	}
}

func TestStreams(t *testing.T) {
	n := New()
	defer n.Close()
	ts := newTransports(t, n, 3)
	a, b, c := ts[0], ts[1], ts[2]
	ca, cb := pair(t, a, b)
	if ca.LocalAddr().String() != a.Addr() || ca.RemoteAddr().String() != b.Addr() ||
		cb.RemoteAddr().String() != a.Addr() {
		t.Errorf("addresses %v->%v, %v->%v", ca.LocalAddr(), ca.RemoteAddr(), cb.LocalAddr(), cb.RemoteAddr())
	}
	// Both sides write before reading: a synchronous pipe would deadlock.
	big := make([]byte, 1<<20)
	if _, err := ca.Write(big); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(io.LimitReader(cb, int64(len(big)))); err != nil || len(got) != len(big) {
		t.Fatalf("read %d, %v", len(got), err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(ca, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("read %q, %v", buf, err)
	}
	// Deadlines.
	_ = cb.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := cb.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past deadline: %v", err)
	}
	_ = cb.SetReadDeadline(time.Time{})
	_ = ca.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := ca.Write(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("write past deadline: %v", err)
	}
	_ = ca.SetDeadline(time.Time{})
	// Close: the peer reads the rest, then EOF; its writes fail.
	_, _ = ca.Write([]byte("bye"))
	_ = ca.Close()
	if got, err := io.ReadAll(cb); err != nil || string(got) != "bye" {
		t.Errorf("after peer Close read %q, %v", got, err)
	}
	if _, err := cb.Write(buf); err == nil {
		t.Error("write to a closed peer succeeded")
	}
	if _, err := ca.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read after own Close: %v", err)
	}

	// A crash resets open streams, unblocking a pending read, and fails dials.
	ca, cb = pair(t, a, b)
	readErr := make(chan error, 1)
	go func() { _, err := cb.Read(buf); readErr <- err }()
	n.Crash(a.Addr())
	if err := <-readErr; !errors.Is(err, ErrReset) {
		t.Errorf("read across a crash: %v", err)
	}
	if _, err := ca.Write(buf); !errors.Is(err, ErrReset) {
		t.Errorf("write across a crash: %v", err)
	}
	if _, err := b.DialTimeout(a.Addr(), time.Second); !errors.Is(err, ErrUnreachable) {
		t.Errorf("dial to crashed node: %v", err)
	}
	n.Restart(a.Addr())

	// A one-way cut fails streams both ways.
	ca, _ = pair(t, a, b)
	n.Cut(b.Addr(), a.Addr())
	if _, err := ca.Read(buf); !errors.Is(err, ErrReset) {
		t.Errorf("read across a cut: %v", err)
	}
	if _, err := a.DialTimeout(b.Addr(), time.Second); !errors.Is(err, ErrUnreachable) {
		t.Errorf("dial against a cut: %v", err)
	}
	n.Heal()

	// Partition resets, Shutdown resets and refuses.
	ca, _ = pair(t, a, c)
	n.Partition([]string{a.Addr(), b.Addr()})
	if _, err := ca.Read(buf); !errors.Is(err, ErrReset) {
		t.Errorf("read across a partition: %v", err)
	}
	n.Heal()
	ca, _ = pair(t, a, c)
	_ = c.Shutdown()
	if _, err := ca.Read(buf); !errors.Is(err, ErrReset) {
		t.Errorf("read from a shut down peer: %v", err)
	}
	if _, err := a.DialTimeout(c.Addr(), time.Second); !errors.Is(err, ErrRefused) {
		t.Errorf("dial to a shut down peer: %v", err)
	}
	if s := n.Stats(); s.StreamsReset < 4 || s.DialsFailed < 3 {
		t.Errorf("stats = %+v", s)
	}
}
