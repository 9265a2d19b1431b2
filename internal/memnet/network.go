package memnet

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by the network and its transports. Dial errors are
// wrapped in a *net.OpError, so test them with errors.Is.
var (
	// ErrClosed is returned by operations on a Transport after Shutdown,
	// or on a Network after Close.
	ErrClosed = errors.New("memnet: closed")
	// ErrAddrInUse is returned by NewTransport when a live transport
	// already holds the address.
	ErrAddrInUse = errors.New("memnet: address already in use")
	// ErrBadAddr is returned for an address that is not an IP "host:port".
	ErrBadAddr = errors.New("memnet: address must be ip:port")
	// ErrRefused is returned by a dial to an address where no live
	// transport listens, or whose accept queue is full.
	ErrRefused = errors.New("memnet: connection refused")
	// ErrUnreachable is returned by a dial across a crash, partition or
	// cut link.
	ErrUnreachable = errors.New("memnet: host unreachable")
	// ErrTooLarge is returned by a write of a packet over MaxPacket
	// bytes, as UDP refuses a datagram over 64 KiB.
	ErrTooLarge = errors.New("memnet: packet too large")
	// ErrReset is returned by reads and writes on a stream broken by a
	// crash, partition, cut or by the Shutdown of either end.
	ErrReset = errors.New("memnet: connection reset")
	// ErrAdvertise is returned by FinalAdvertiseAddr when asked to
	// advertise an address other than the transport's own.
	ErrAdvertise = errors.New("memnet: advertise address differs from transport address")
)

// Default sizes of a transport's queues. Memberlist drains its packet
// channel in one goroutine that never blocks for long, so the queue only
// has to absorb bursts.
const (
	packetQueue = 4096
	streamQueue = 128
)

// Option configures a Network built by New.
type Option func(*options)

type options struct {
	seed    int64
	seeded  bool
	latency time.Duration
	loss    float64
}

// WithSeed makes the loss decisions of the network deterministic: two
// networks with the same seed that are asked the same questions in the
// same order drop the same packets. Without it the seed is random.
// Memberlist's own randomness (probe order, gossip targets) and goroutine
// scheduling are not covered, so a whole cluster run is not replayable.
func WithSeed(seed int64) Option {
	return func(o *options) { o.seed, o.seeded = seed, true }
}

// WithLatency sets the initial one-way packet latency; see
// [Network.SetLatency].
func WithLatency(d time.Duration) Option {
	return func(o *options) { o.latency = d }
}

// WithLoss sets the initial share of packets dropped; see
// [Network.SetLoss].
func WithLoss(fraction float64) Option {
	return func(o *options) { o.loss = fraction }
}

// Network is an in-memory network of transports. It is safe for
// concurrent use; fault controls take effect at once for new packets,
// packets still in flight (under latency) and open streams.
type Network struct {
	// st is an immutable snapshot of the topology and faults, replaced
	// whole by every change (compare-and-swap, see update). Packets, sent
	// by the thousand per second, read it without taking a lock: with an
	// RWMutex, the writers queued behind readers (dials, stream closes)
	// convoyed under load until probes timed out. Changes take no lock
	// either: with a mutex, nodes starting at once queue for it on a CPU
	// busy starting the others.
	st     atomic.Pointer[state]
	nextIP atomic.Uint32 // addresses handed out by Allocate, from 10.0.0.1

	linksMu sync.Mutex
	links   map[*pipeLink]struct{} // open streams, to reset on faults

	rngMu sync.Mutex
	rng   *rand.Rand

	delay delayQueue
	stats counters
}

// state is the network's topology and faults. It is never modified once
// published: update copies it.
type state struct {
	closed      bool
	nodes       map[string]*Transport // live transports by canonical address
	crashed     map[string]bool
	groups      map[string]int // partition group per address, 1-based
	partitioned bool
	cuts        map[link]bool // one-way cuts
	latency     time.Duration
	loss        float64
}

func (s *state) clone() *state {
	c := *s
	c.nodes = maps.Clone(s.nodes)
	c.crashed = maps.Clone(s.crashed)
	c.groups = maps.Clone(s.groups)
	c.cuts = maps.Clone(s.cuts)
	return &c
}

// update applies f to a copy of the state and publishes it. If another
// change was published meanwhile, it starts again from that one: f must
// only change the copy it is given.
func (n *Network) update(f func(s *state)) {
	_ = n.updateIf(func(s *state) error { f(s); return nil })
}

// updateIf is update, but when f returns an error nothing is published
// and the error is returned.
func (n *Network) updateIf(f func(s *state) error) error {
	for {
		old := n.st.Load()
		s := old.clone()
		if err := f(s); err != nil {
			return err
		}
		if n.st.CompareAndSwap(old, s) {
			return nil
		}
	}
}

type link struct{ from, to string }

// New returns an empty network.
func New(opts ...Option) *Network {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if !o.seeded {
		o.seed = rand.Int64()
	}
	n := &Network{
		links: make(map[*pipeLink]struct{}),
		rng:   rand.New(rand.NewPCG(uint64(o.seed), 0x6d656d6e6574)), // "memnet"
	}
	n.st.Store(&state{
		nodes:   make(map[string]*Transport),
		crashed: make(map[string]bool),
		groups:  make(map[string]int),
		cuts:    make(map[link]bool),
		latency: max(o.latency, 0),
		loss:    clamp01(o.loss),
	})
	n.delay.net = n
	return n
}

// DefaultPort is the port of the addresses handed out by Allocate; it is
// memberlist's default port.
const DefaultPort = 7946

// Allocate returns the next free address "10.x.y.z:7946", counting up
// from 10.0.0.1. It only reserves nothing: pass the result to
// NewTransport (NewTransport("") does both).
func (n *Network) Allocate() string {
	for {
		seq := n.nextIP.Add(1) - 1
		// 10.0.0.1 + seq, within 10.0.0.0/8.
		v := 10<<24 | (1+seq)&0xffffff
		ip := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		if b := ip.As4(); b[3] == 0 || b[3] == 255 {
			continue // skip network and broadcast-looking addresses
		}
		addr := netip.AddrPortFrom(ip, DefaultPort).String()
		if _, used := n.st.Load().nodes[addr]; !used {
			return addr
		}
	}
}

// NewTransport attaches a transport at addr, an "ip:port" such as
// "10.0.0.1:7946", or at the next free address if addr is "". An address
// may be reused once the transport holding it has been shut down: that is
// how a restarted process is modelled. Faults set on the address (Crash,
// Partition, Cut) stay in force for the new transport.
func (n *Network) NewTransport(addr string) (*Transport, error) {
	for {
		a := addr
		if a == "" {
			a = n.Allocate()
		}
		ap, err := parseAddr(a)
		if err != nil {
			return nil, err
		}
		key := ap.String()
		t := newTransport(n, ap)
		err = n.updateIf(func(s *state) error {
			if s.closed {
				return ErrClosed
			}
			if _, used := s.nodes[key]; used {
				return fmt.Errorf("%w: %s", ErrAddrInUse, key)
			}
			s.nodes[key] = t
			return nil
		})
		if addr == "" && errors.Is(err, ErrAddrInUse) {
			continue // taken by an explicit address since Allocate: take another
		}
		if err != nil {
			return nil, err
		}
		return t, nil
	}
}

// Close shuts down every transport, breaks every stream and drops the
// packets in flight. The network cannot be used afterwards. Close is
// idempotent.
func (n *Network) Close() error {
	var nodes map[string]*Transport
	if n.updateIf(func(s *state) error {
		if s.closed {
			return ErrClosed
		}
		s.closed, nodes = true, s.nodes
		return nil
	}) != nil {
		return nil // closed already
	}
	ts := make([]*Transport, 0, len(nodes))
	for _, t := range nodes {
		ts = append(ts, t)
	}
	for _, t := range ts {
		_ = t.Shutdown()
	}
	n.delay.close()
	return nil
}

// Crash cuts addr off from the network, as a hung process or a host
// whose cable was pulled: packets to and from it are silently dropped,
// dials to and from it fail with ErrUnreachable and its open streams are
// reset. The transport (and the memberlist on it) keeps running, so it
// will in turn see every peer fail. The crash is a property of the
// address: it outlives the transport and applies to a new transport at
// the same address until Restart.
func (n *Network) Crash(addr string) {
	key := canon(addr)
	n.update(func(s *state) { s.crashed[key] = true })
	n.breakUnreachable()
}

// Restart undoes Crash: addr can talk again to every peer it is not
// partitioned or cut from. Memberlist on the node will refute its death
// when it hears of it (peers gossip to dead nodes for
// GossipToTheDeadTime); a Join forces the merge sooner.
func (n *Network) Restart(addr string) {
	key := canon(addr)
	n.update(func(s *state) { delete(s.crashed, key) })
}

// Partition splits the network into the given groups: nodes of different
// groups cannot exchange packets or open streams, and streams between
// them are reset. Every address not listed, including transports created
// later, belongs to one more, implicit group, so Partition([]string{a})
// isolates a from everyone else. A call replaces the previous partition;
// Partition() with no groups removes it (cuts stay). An address listed in
// two groups ends up in the last one.
func (n *Network) Partition(groups ...[]string) {
	n.update(func(s *state) {
		s.groups = make(map[string]int)
		for i, g := range groups {
			for _, a := range g {
				s.groups[canon(a)] = i + 1
			}
		}
		s.partitioned = len(groups) > 0
	})
	n.breakUnreachable()
}

// Cut drops the traffic of one direction of a link: packets from -> to are
// silently lost. Streams need both directions, as TCP does for its
// handshake and acknowledgements, so dials from -> to and to -> from fail
// with ErrUnreachable and open streams between the two are reset. Packets
// to -> from still pass.
func (n *Network) Cut(from, to string) {
	l := link{canon(from), canon(to)}
	n.update(func(s *state) { s.cuts[l] = true })
	n.breakUnreachable()
}

// Mend undoes one Cut(from, to).
func (n *Network) Mend(from, to string) {
	l := link{canon(from), canon(to)}
	n.update(func(s *state) { delete(s.cuts, l) })
}

// Heal removes the partition and every cut. Crashes, loss and latency
// stay as they are.
func (n *Network) Heal() {
	n.update(func(s *state) {
		s.groups = make(map[string]int)
		s.partitioned = false
		s.cuts = make(map[link]bool)
	})
}

// SetLoss makes the network drop the given share (0 to 1) of packets that
// would otherwise be delivered. Streams are reliable and unaffected, as
// TCP retransmits for them.
func (n *Network) SetLoss(fraction float64) {
	n.update(func(s *state) { s.loss = clamp01(fraction) })
}

// SetLatency sets the one-way delay of every packet sent from now on, and
// of the connection set-up of a stream dial (which waits one round trip,
// 2*d). Bytes on an open stream are not delayed. Zero delivers packets
// synchronously within WriteTo.
func (n *Network) SetLatency(d time.Duration) {
	n.update(func(s *state) { s.latency = max(d, 0) })
}

// Stats is a snapshot of the network's counters since New.
type Stats struct {
	PacketsSent      uint64 // WriteTo calls accepted
	PacketsDelivered uint64 // packets put on a receiver's PacketCh
	PacketsDropped   uint64 // lost: by SetLoss, a fault, no receiver or a full queue
	PacketsLost      uint64 // of which dropped by SetLoss
	BytesSent        uint64
	BytesDelivered   uint64
	Dials            uint64 // dial attempts
	DialsFailed      uint64 // dials that returned an error
	StreamsReset     uint64 // streams broken by a fault or a Shutdown
	LargestPacket    uint64 // bytes of the largest packet sent
}

type counters struct {
	packetsSent, packetsDelivered, packetsDropped, packetsLost atomic.Uint64
	bytesSent, bytesDelivered                                  atomic.Uint64
	dials, dialsFailed, streamsReset                           atomic.Uint64
	largest                                                    atomic.Uint64
}

// Stats returns the network's counters.
func (n *Network) Stats() Stats {
	c := &n.stats
	return Stats{
		PacketsSent:      c.packetsSent.Load(),
		PacketsDelivered: c.packetsDelivered.Load(),
		PacketsDropped:   c.packetsDropped.Load(),
		PacketsLost:      c.packetsLost.Load(),
		BytesSent:        c.bytesSent.Load(),
		BytesDelivered:   c.bytesDelivered.Load(),
		Dials:            c.dials.Load(),
		DialsFailed:      c.dialsFailed.Load(),
		StreamsReset:     c.streamsReset.Load(),
		LargestPacket:    c.largest.Load(),
	}
}

// reachable tells whether packets from -> to pass.
func (s *state) reachable(from, to string) bool {
	if s.crashed[from] || s.crashed[to] {
		return false
	}
	if s.partitioned && s.groups[from] != s.groups[to] {
		return false
	}
	return !s.cuts[link{from, to}]
}

// streamable tells whether a stream can live between a and b.
func (s *state) streamable(a, b string) bool {
	return s.reachable(a, b) && s.reachable(b, a)
}

// lookup returns the live transport at addr, and addr in canonical form.
func (s *state) lookup(addr string) (*Transport, string) {
	if t, ok := s.nodes[addr]; ok {
		return t, addr
	}
	addr = canon(addr)
	return s.nodes[addr], addr
}

// lose decides, from the seeded source, whether to drop one packet.
func (n *Network) lose(loss float64) bool {
	if loss <= 0 {
		return false
	}
	n.rngMu.Lock()
	r := n.rng.Float64()
	n.rngMu.Unlock()
	return r < loss
}

// breakUnreachable resets the streams a fault has just separated.
func (n *Network) breakUnreachable() {
	var broken []*pipeLink
	s := n.st.Load()
	n.linksMu.Lock()
	for l := range n.links {
		if !s.streamable(l.a, l.b) {
			broken = append(broken, l)
			delete(n.links, l)
		}
	}
	n.linksMu.Unlock()
	for _, l := range broken {
		l.reset()
	}
}

// breakTransport resets the streams with t at either end.
func (n *Network) breakTransport(t *Transport) {
	var broken []*pipeLink
	n.linksMu.Lock()
	for l := range n.links {
		if l.ta == t || l.tb == t {
			broken = append(broken, l)
			delete(n.links, l)
		}
	}
	n.linksMu.Unlock()
	for _, l := range broken {
		l.reset()
	}
}

// register records an open stream. It reports false, and the stream
// must be reset, if the link is already cut or either end shut down: a
// fault that raced with the dial would otherwise miss it.
func (n *Network) register(l *pipeLink) bool {
	n.linksMu.Lock()
	n.links[l] = struct{}{}
	n.linksMu.Unlock()
	// A fault publishes its state before scanning links, so either the
	// scan sees this link or this check sees the fault.
	if n.st.Load().streamable(l.a, l.b) && !l.ta.isShutdown() && !l.tb.isShutdown() {
		return true
	}
	n.forget(l)
	return false
}

func (n *Network) forget(l *pipeLink) {
	n.linksMu.Lock()
	delete(n.links, l)
	n.linksMu.Unlock()
}

// deliver hands a packet to whatever transport holds addr now, if the
// link from -> to is still open.
func (n *Network) deliver(from, to string, p packet) {
	s := n.st.Load()
	dst := s.nodes[to]
	if dst == nil || !s.reachable(from, to) || !dst.enqueue(p) {
		n.stats.packetsDropped.Add(1)
		return
	}
	n.stats.packetsDelivered.Add(1)
	n.stats.bytesDelivered.Add(uint64(len(p.buf)))
}

func parseAddr(addr string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: %q", ErrBadAddr, addr)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// canon returns the canonical form of an address, so that "10.0.0.1:80"
// and "[::ffff:10.0.0.1]:80" name the same node. Unparsable addresses
// are kept as they are: they match nothing.
func canon(addr string) string {
	ap, err := parseAddr(addr)
	if err != nil {
		return addr
	}
	return ap.String()
}

func clamp01(f float64) float64 {
	return min(max(f, 0), 1)
}

// udpAddr and tcpAddr are net.Addr values whose String is the address.
func udpAddr(ap netip.AddrPort) net.Addr { return net.UDPAddrFromAddrPort(ap) }
func tcpAddr(ap netip.AddrPort) net.Addr { return net.TCPAddrFromAddrPort(ap) }
