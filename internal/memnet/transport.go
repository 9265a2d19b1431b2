package memnet

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

// Transport is one node's attachment to a Network. It implements
// memberlist.NodeAwareTransport, so it can be set as
// memberlist.Config.Transport (and so serf's MemberlistConfig.Transport).
// Its methods are safe for concurrent use.
type Transport struct {
	net  *Network
	ap   netip.AddrPort
	addr string   // canonical "ip:port"
	from net.Addr // *net.UDPAddr, the From of the packets it sends

	packetCh chan *memberlist.Packet
	streamCh chan net.Conn

	mu       sync.RWMutex // guards shutdown against enqueues
	shutdown bool
	done     chan struct{} // closed by Shutdown
}

type packet struct {
	buf  []byte
	from net.Addr
}

func newTransport(n *Network, ap netip.AddrPort) *Transport {
	return &Transport{
		net:      n,
		ap:       ap,
		addr:     ap.String(),
		from:     udpAddr(ap),
		packetCh: make(chan *memberlist.Packet, packetQueue),
		streamCh: make(chan net.Conn, streamQueue),
		done:     make(chan struct{}),
	}
}

// MaxPacket is the size of the largest packet the network carries: it has
// no MTU, and 64 KiB is the largest a UDP datagram can be.
const MaxPacket = 64 << 10

// PacketSize returns MaxPacket: package cluster then lets memberlist fill
// its gossip packets up to it or to cluster.MaxGossipPacket, the smaller
// (see cluster.Config.Transport), so that a join storm spreads in fewer
// gossip rounds than over UDP's 1,400 bytes.
func (t *Transport) PacketSize() int { return MaxPacket }

// Addr returns the transport's address, "ip:port".
func (t *Transport) Addr() string { return t.addr }

// FinalAdvertiseAddr implements memberlist.Transport. Given no IP it
// returns the transport's own address. Given one (memberlist passes
// Config.AdvertiseAddr and AdvertisePort), it must be the transport's
// own IP, and the port either its own or 0: peers could not reach any
// other address, so that is reported as ErrAdvertise rather than left to
// fail silently.
func (t *Transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	own := net.IP(t.ap.Addr().AsSlice())
	if ip == "" {
		return own, int(t.ap.Port()), nil
	}
	want := net.ParseIP(ip)
	if want == nil || !want.Equal(own) || (port != 0 && port != int(t.ap.Port())) {
		return nil, 0, fmt.Errorf("%w: %s, transport at %s",
			ErrAdvertise, net.JoinHostPort(ip, fmt.Sprint(port)), t.addr)
	}
	return own, int(t.ap.Port()), nil
}

// WriteTo implements memberlist.Transport. Like UDP it reports no error
// when the packet is lost; it fails only with a malformed address or
// after Shutdown.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress implements memberlist.NodeAwareTransport. The node name
// is ignored: packets are routed by address.
func (t *Transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	if t.isShutdown() {
		return now, ErrClosed
	}
	if len(b) > MaxPacket {
		return now, fmt.Errorf("%w: %d bytes, over %d", ErrTooLarge, len(b), MaxPacket)
	}
	n := t.net
	st := &n.stats
	st.packetsSent.Add(1)
	st.bytesSent.Add(uint64(len(b)))
	for size := uint64(len(b)); ; {
		l := st.largest.Load()
		if size <= l || st.largest.CompareAndSwap(l, size) {
			break
		}
	}

	s := n.st.Load()
	dst, to := s.lookup(a.Addr)
	pass := dst != nil && s.reachable(t.addr, to)
	loss, latency := s.loss, s.latency

	if !pass {
		st.packetsDropped.Add(1)
		return now, nil
	}
	if n.lose(loss) {
		st.packetsDropped.Add(1)
		st.packetsLost.Add(1)
		return now, nil
	}
	// The caller may reuse b once we return.
	p := packet{buf: append([]byte(nil), b...), from: t.from}
	if latency > 0 {
		n.delay.push(now.Add(latency), t.addr, to, p)
		return now, nil
	}
	if !dst.enqueue(p) {
		st.packetsDropped.Add(1)
		return now, nil
	}
	st.packetsDelivered.Add(1)
	st.bytesDelivered.Add(uint64(len(p.buf)))
	return now, nil
}

// enqueue puts a packet on the PacketCh without blocking. It reports
// false, and the packet is lost, when the transport is shut down or its
// queue is full, as a UDP socket's receive buffer would.
func (t *Transport) enqueue(p packet) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.shutdown {
		return false
	}
	select {
	case t.packetCh <- &memberlist.Packet{Buf: p.buf, From: p.from, Timestamp: time.Now()}:
		return true
	default:
		return false
	}
}

// PacketCh implements memberlist.Transport. The channel is never closed.
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// StreamCh implements memberlist.Transport. The channel is never closed.
func (t *Transport) StreamCh() <-chan net.Conn { return t.streamCh }

// DialTimeout implements memberlist.Transport.
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport. It opens a
// stream to the transport at a.Addr (the name is ignored) and hands the
// other end to that transport's StreamCh. It fails at once, without
// waiting for the timeout, with ErrRefused when nothing listens there and
// ErrUnreachable across a crash, partition or cut. Under latency it first
// waits one round trip, and times out if that is longer than timeout.
// Errors are *net.OpError values wrapping those sentinels.
func (t *Transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	n := t.net
	n.stats.dials.Add(1)
	c, err := t.dial(a.Addr, timeout)
	if err != nil {
		n.stats.dialsFailed.Add(1)
		return nil, &net.OpError{Op: "dial", Net: "memnet", Source: tcpAddr(t.ap), Addr: addrOrNil(a.Addr), Err: err}
	}
	return c, nil
}

func (t *Transport) dial(addr string, timeout time.Duration) (net.Conn, error) {
	if t.isShutdown() {
		return nil, ErrClosed
	}
	n := t.net
	to := canon(addr)
	if latency := n.st.Load().latency; latency > 0 {
		rtt := 2 * latency
		if timeout > 0 && rtt > timeout {
			rtt = timeout
		}
		timer := time.NewTimer(rtt)
		select {
		case <-timer.C:
		case <-t.done:
			timer.Stop()
			return nil, ErrClosed
		}
		if timeout > 0 && 2*latency > timeout {
			return nil, errDialTimeout
		}
	}

	s := n.st.Load()
	dst := s.nodes[to]
	switch {
	case !s.streamable(t.addr, to):
		return nil, ErrUnreachable
	case dst == nil:
		return nil, ErrRefused
	}
	l := newPipeLink(n, t, dst)
	if !n.register(l) {
		l.reset()
		return nil, ErrUnreachable
	}
	if !dst.accept(l.cb) {
		n.forget(l)
		l.reset()
		return nil, ErrRefused
	}
	return l.ca, nil
}

// accept queues an incoming stream without blocking.
func (t *Transport) accept(c net.Conn) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.shutdown {
		return false
	}
	select {
	case t.streamCh <- c:
		return true
	default:
		return false
	}
}

// Shutdown implements memberlist.Transport: the address is released for
// a new transport, packets to this one are dropped, dials to it are
// refused, its open streams are reset and queued incoming ones closed.
// It is idempotent and leaves no goroutine behind.
func (t *Transport) Shutdown() error {
	t.mu.Lock()
	if t.shutdown {
		t.mu.Unlock()
		return nil
	}
	t.shutdown = true
	close(t.done)
	t.mu.Unlock()

	n := t.net
	if n.st.Load().nodes[t.addr] == t {
		n.update(func(s *state) {
			if s.nodes[t.addr] == t {
				delete(s.nodes, t.addr)
			}
		})
	}
	n.breakTransport(t)
	for {
		select {
		case c := <-t.streamCh:
			_ = c.Close()
		default:
			return nil
		}
	}
}

func (t *Transport) isShutdown() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.shutdown
}

func addrOrNil(addr string) net.Addr {
	ap, err := parseAddr(addr)
	if err != nil {
		return nil
	}
	return tcpAddr(ap)
}
