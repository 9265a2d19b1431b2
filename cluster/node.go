package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/carbonkit/carbon/internal/logbridge"
	"github.com/carbonkit/carbon/internal/tags"
	"github.com/carbonkit/carbon/role"
)

// Errors returned by a Node.
var (
	// ErrClosed is returned by operations on a Node that was closed.
	ErrClosed = errors.New("cluster: node is closed")
	// ErrForeignDomain is returned by Join when a seed belongs to another domain.
	ErrForeignDomain = errors.New("cluster: foreign domain")
	// ErrKeyMismatch is returned by Join when a seed answers but cannot
	// share gossip with this node: a different key, or encryption on one
	// side only.
	ErrKeyMismatch = errors.New("cluster: gossip key mismatch")
	// ErrTagsTooLarge is returned by Join when the member's tags do not fit
	// in memberlist's 512-byte metadata.
	ErrTagsTooLarge = errors.New("cluster: tags too large")
)

// Node is this process's membership in one domain. Create one with [Join];
// a process may hold several Nodes, one per domain. All methods are safe
// for concurrent use.
type Node struct {
	cfg  Config
	log  *slog.Logger
	serf *serf.Serf
	// serfMu serialises serf.SetTags with serf.Query: Query reads the
	// local node's address without the lock UpdateNode writes it under
	// (a data race inside serf/memberlist).
	serfMu sync.Mutex
	events chan serf.Event
	obs    *observability

	// local state, guarded by mu; the loop builds the self member from it.
	mu       sync.Mutex
	state    ServingState
	claim    uint64
	advHost  string
	advPort  int
	closed   bool
	left     bool
	maySince time.Time // when the node may claim without contact

	contact   atomic.Bool // some seed was reached (or there are no seeds)
	joinDone  atomic.Bool // the first join attempt is over
	caughtUp  atomic.Bool // since contact, the view holds what serf knew then (see contacted)
	writable  atomic.Bool
	view      atomic.Pointer[View]
	rejection atomic.Pointer[string] // the last foreign domain the domain filter saw
	// rejoined: a member's state listed this node's name as left or
	// dead, so the domain knew it before this process (a restart); see
	// syncAfterJoin.
	rejoined atomic.Bool
	// quitting is set when Leave begins: the node then sends no state
	// over a stream (see leaveGuard).
	quitting atomic.Bool
	// pushed is closed when the last hand-over push (pushStateTo) has
	// ended; nil if there was none. Guarded by mu.
	pushed chan struct{}

	// loop-owned
	dirty   bool // members changed since the last view
	leaving int  // members whose status is StatusLeaving
	// recheck brings the loop a copy of serf's members (see
	// recheckLeaving); recheckEvery is how long a member may look
	// leaving before the loop asks for one.
	recheck      chan []serf.Member
	recheckEvery time.Duration
	members      map[string]*Member // immutable once stored: views share them
	names        []string           // sorted names of members, self included
	maxSeen      map[string]uint64
	// catchUp brings the loop, once, the members serf knew when the node
	// made contact (see contacted); awaiting holds them until the view
	// has them all, or until awaitUntil.
	catchUp    chan []string
	awaiting   []string
	awaitUntil time.Time

	kick  chan struct{}
	tagCh chan struct{}
	stop  chan struct{}
	done  chan struct{}
	wg    sync.WaitGroup

	watchMu  sync.Mutex
	watchers map[chan *View]struct{}

	msgs *messenger

	// origin is the zero of the Node's monotonic clock (mono); lease is
	// the write lease of an Active/Passive manager, nil for others.
	origin time.Time
	lease  *lease

	// ver proves members' identities when Config.Trust is set (nil
	// otherwise); sig caches the signature of the claim, guarded by mu.
	ver *verifier
	sig struct {
		epoch, gen uint64
		value      string
	}
}

// Join starts a Node in cfg.Domain and joins the seeds. It validates cfg
// first and returns an error wrapping [ErrInvalidConfig] that names the
// field when it is wrong; nothing is started then. If no seed can be
// reached, the node comes up alone and keeps retrying in the background
// with backoff; a seed of another domain fails Join with
// [ErrForeignDomain]. ctx bounds the first join attempt only.
func Join(ctx context.Context, cfg Config) (*Node, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	n := &Node{
		origin:   time.Now(),
		cfg:      cfg,
		log:      cfg.Logger.With("domain", cfg.Domain, "node", cfg.NodeName),
		events:   make(chan serf.Event, 4096),
		recheck:  make(chan []serf.Member, 1),
		catchUp:  make(chan []string, 1),
		members:  map[string]*Member{},
		names:    []string{cfg.NodeName},
		maxSeen:  map[string]uint64{},
		kick:     make(chan struct{}, 1),
		tagCh:    make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		watchers: map[chan *View]struct{}{},
	}
	n.obs = newObservability(n)
	ctx, span := n.obs.tracer.Start(ctx, "cluster.Join", trace.WithAttributes(
		attribute.String("carbon.domain", cfg.Domain), attribute.String("carbon.subdomain", cfg.SubDomain),
		attribute.String("carbon.role", cfg.Role.String())))
	defer span.End()
	if err := n.start(ctx); err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return nil, err
	}
	return n, nil
}

func (n *Node) start(ctx context.Context) error {
	cfg := &n.cfg
	sc := serfConfig(cfg.Profile)
	sc.NodeName = cfg.NodeName
	sc.EventCh = n.events
	sc.Logger = logbridge.New(n.log, "serf")
	sc.MemberlistConfig.Logger = logbridge.New(n.log, "memberlist")
	sc.LogOutput, sc.MemberlistConfig.LogOutput = nil, nil
	sc.MemberlistConfig.Name = cfg.NodeName
	sc.SnapshotPath = cfg.SnapshotPath
	sc.RejoinAfterLeave = true
	sc.UserEventSizeLimit = MaxMessageSize + 128
	// Not sc.Merge: serf would then replace these two with its own.
	filter := &domainFilter{n: n}
	sc.MemberlistConfig.Merge, sc.MemberlistConfig.Alive = filter, filter
	sc.EnableNameConflictResolution = true
	n.recheckEvery = sc.MemberlistConfig.ProbeInterval

	bindHost, bindPort, _ := splitAddr(cfg.BindAddr, DefaultPort)
	ml := sc.MemberlistConfig
	ml.BindAddr, ml.BindPort = bindHost, bindPort
	ml.AdvertiseAddr, ml.AdvertisePort = "", bindPort
	var tr memberlist.Transport
	if cfg.Transport != nil {
		tr = cfg.Transport
		if ps, ok := cfg.Transport.(interface{ PacketSize() int }); ok && ps.PacketSize() > 0 {
			ml.UDPBufferSize = min(ps.PacketSize(), MaxGossipPacket)
		}
	} else {
		// Built here rather than by memberlist, to be wrapped below; with
		// port 0 the OS picks one and memberlist is told which.
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{bindHost}, BindPort: bindPort, Logger: ml.Logger,
		})
		if err != nil {
			return fmt.Errorf("cluster: BindAddr %q: %w", cfg.BindAddr, err)
		}
		tr = nt
		ml.BindPort, ml.AdvertisePort = nt.GetAutoBindPort(), nt.GetAutoBindPort()
	}
	guard := newLeaveGuard(tr, n.quitting.Load)
	ml.Transport = guard
	defer func() {
		switch {
		case n.serf != nil:
		case cfg.Transport == nil:
			guard.Shutdown()
		default:
			guard.release() // the caller's transport stays theirs
		}
	}()
	if cfg.AdvertiseAddr != "" {
		ml.AdvertiseAddr, ml.AdvertisePort, _ = splitAddr(cfg.AdvertiseAddr, DefaultPort)
	} else if bindHost != "0.0.0.0" && bindHost != "::" {
		ml.AdvertiseAddr = bindHost
	}
	if len(cfg.Key) > 0 {
		kr, err := memberlist.NewKeyring(nil, cfg.Key)
		if err != nil {
			return fmt.Errorf("%w: Key: %v", ErrInvalidConfig, err)
		}
		sc.MemberlistConfig.Keyring = kr
		sc.MemberlistConfig.GossipVerifyIncoming = true
		sc.MemberlistConfig.GossipVerifyOutgoing = true
	}

	if cfg.Trust != nil {
		addr := cfg.IdentityAddr
		if addr == "" {
			addr = net.JoinHostPort(bindHost, "0")
		}
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("cluster: IdentityAddr %q: %w", addr, err)
		}
		n.ver = newVerifier(n, lis)
		defer func() {
			if n.serf == nil {
				n.ver.srv.Close()
			}
		}()
	} else if !cfg.Observer {
		n.log.Warn("no trust root (Config.Trust): roles are self-asserted, and anyone holding the gossip key can make itself the active manager")
	}

	// Tags are checked before serf starts so the error names our fields.
	n.advHost = ml.AdvertiseAddr
	// Without DeferServing the node is serving from its first gossip: no
	// extra tag broadcast right after the join.
	n.state = Serving
	if cfg.DeferServing {
		n.state = Starting
	}
	t := n.tagsLocked()
	size := tags.Size(t)
	if cfg.Role == role.Manager && !cfg.Observer {
		// Room for the claim and, with trust, its signature, added later.
		size += 2 + 13
		if cfg.Trust != nil {
			size += 2 + 96
		}
	}
	if size > tags.MaxSize {
		return fmt.Errorf("%w: Endpoints and Properties encode to %d bytes with the other tags, over memberlist's %d-byte limit (endpoints %d bytes, properties %d bytes); carry big data in a cluster message or an endpoint",
			ErrTagsTooLarge, size, tags.MaxSize, len(t[tags.KeyEndpoints]), len(t[tags.KeyProps]))
	}
	sc.Tags = t

	s, err := serf.Create(sc)
	if err != nil {
		return fmt.Errorf("cluster: start serf on %s: %w", cfg.BindAddr, err)
	}
	n.serf = s
	local := s.LocalMember()
	n.advHost, n.advPort = local.Addr.String(), int(local.Port)
	n.msgs = newMessenger(n)
	n.obs.register()

	if cfg.Role == role.Manager && !cfg.Observer && cfg.ManagerMode == ActivePassive {
		n.lease = newLease(n, sc.MemberlistConfig)
	}
	n.wg.Add(3)
	go n.loop()
	go n.tagger()
	go n.msgs.run()
	if n.ver != nil {
		n.wg.Add(1)
		go n.ver.run()
	}
	if n.lease != nil {
		n.wg.Add(1)
		go n.lease.run()
	}

	n.mu.Lock()
	n.maySince = time.Now().Add(cfg.ElectionDelay)
	n.mu.Unlock()
	var seeds []string // the seeds' addresses this node joined through
	if len(cfg.Seeds) == 0 {
		n.contacted()
	} else if seeds, err = n.joinSeeds(ctx); err != nil {
		if rej := n.rejection.Load(); rej != nil {
			n.Close()
			return fmt.Errorf("%w: a seed of %v belongs to domain %q, this node to domain %q", ErrForeignDomain, cfg.Seeds, *rej, cfg.Domain)
		}
		if isKeyError(err) {
			n.Close()
			return fmt.Errorf("%w: seeds %v refused this node's gossip (check Config.Key): %v", ErrKeyMismatch, cfg.Seeds, err)
		}
		n.log.Warn("no seed reachable yet; running alone and retrying", "seeds", cfg.Seeds, "err", err)
	}
	joined := n.contact.Load() && len(cfg.Seeds) > 0
	n.joinDone.Store(true)
	if len(cfg.Seeds) > 0 {
		n.wg.Add(1)
		go n.retryJoin()
	}
	if joined {
		n.wg.Add(1)
		go n.syncAfterJoin(sc.MemberlistConfig.GossipInterval, seeds)
	}
	n.poke()
	return nil
}

// isKeyError recognises memberlist's errors for a keyring mismatch.
func isKeyError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "no installed keys could decrypt") ||
		strings.Contains(s, "encryption is not configured") ||
		strings.Contains(s, "remote state is not encrypted")
}

// resolveSeeds resolves every seed to all its addresses.
func (n *Node) resolveSeeds(ctx context.Context) []string {
	var out []string
	for _, s := range n.cfg.Seeds {
		host, port, _ := splitAddr(s, DefaultPort)
		if ip := net.ParseIP(host); ip != nil {
			// As a Member's Addr spells it (syncAfterJoin compares them).
			out = append(out, net.JoinHostPort(ip.String(), strconv.Itoa(port)))
			continue
		}
		ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			n.log.Debug("seed does not resolve", "seed", s, "err", err)
			continue
		}
		for _, ip := range ips {
			out = append(out, net.JoinHostPort(ip.IP.String(), strconv.Itoa(port)))
		}
	}
	return out
}

// joinSeeds joins every seed's address other than this node's, and returns
// those addresses.
func (n *Node) joinSeeds(ctx context.Context) ([]string, error) {
	addrs := n.resolveSeeds(ctx)
	self := net.JoinHostPort(n.advHost, strconv.Itoa(n.advPort))
	var targets []string
	for _, a := range addrs {
		if a != self {
			targets = append(targets, a)
		}
	}
	if len(targets) == 0 {
		if len(addrs) > 0 {
			n.contacted() // we are the only seed
			return nil, nil
		}
		return nil, errors.New("cluster: no seed resolves")
	}
	type result struct {
		k   int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		k, err := n.serf.Join(targets, true)
		ch <- result{k, err}
	}()
	select {
	case r := <-ch:
		if r.k > 0 {
			n.contacted()
			return targets, nil
		}
		return targets, r.err
	case <-ctx.Done():
		return targets, ctx.Err()
	}
}

// syncRounds are when, in gossip intervals after its join, a node
// exchanges its full state with a member (syncAfterJoin).
var syncRounds = []int{1, 3, 8, 20, 50}

// syncAfterJoin exchanges this node's full state with an alive member (a
// memberlist push/pull, as the periodic anti-entropy does) about a gossip
// interval after the join, then four more times, further apart
// (syncRounds, each jittered to between half and all of its wait; the last
// 5 to 10 s after the join on LAN timings). When many nodes start at once
// (a deployment rolling out), each learns from its seeds only the members
// that had joined before it; the rest reach it by gossip, and a member
// whose alive message ran out of retransmissions before reaching it stays
// unknown until the periodic push/pull, 30 s to minutes away on LAN
// timings. These exchanges close that gap within seconds, at the cost of
// five state transfers per join.
//
// The first exchange goes to one of its seeds (seeds: the addresses the join
// contacted) while one is alive, the others to a random member. Every
// joiner exchanged state with every seed, so a seed knows all the nodes
// that joined through it until then, where a random member may have joined
// a moment ago and know little: 200 nodes started at once on the
// in-memory network then all see each other after this first exchange
// (0.2 s of protocol time, against 1.3 s with a random member, and half
// the CPU). It adds one exchange per joiner to a seed, which served one for
// the join already. (The first exchange early halved the convergence time
// of 50 and 100 nodes started at once; the last one catches members that
// joined after the others: 200 nodes started at once in one process take
// up to 4 s to all get in, and one run in three then waited 130 s for the
// periodic push/pull.)
func (n *Node) syncAfterJoin(gossip time.Duration, seeds []string) {
	defer n.wg.Done()
	prev := 0
	for i, r := range syncRounds {
		d := time.Duration(r-prev) * gossip
		prev = r
		t := time.NewTimer(d/2 + rand.N(d/2+1)) // jittered: joiners must not sync in step
		select {
		case <-n.stop:
			t.Stop()
			return
		case <-t.C:
		}
		var peers, seedPeers []string
		for _, m := range n.View().members {
			if m.Status == StatusAlive && m.Name != n.cfg.NodeName {
				peers = append(peers, m.Addr)
				if i == 0 && slices.Contains(seeds, m.Addr) {
					seedPeers = append(seedPeers, m.Addr)
				}
			}
		}
		if len(seedPeers) > 0 {
			peers = seedPeers
		}
		if len(peers) == 0 {
			continue
		}
		peer := peers[rand.N(len(peers))]
		// Close must not wait for an exchange with a host that does not
		// answer (up to memberlist's TCP timeout): the exchange ends on
		// its own once Close has shut the transport down.
		//
		// A node the domain knew before (a restart: some member listed
		// it as left or dead) exchanges through serf, others through
		// memberlist alone. serf.Join also broadcasts a join intent at the
		// current Lamport time. A node restarted moments after it left
		// announces its join at a time no later than serf's stand-in for
		// its leave (the leave's time plus one, which a member that has
		// not yet seen it alive again sends for every left member in a
		// push/pull): whoever merges that state marks it leaving again,
		// and only a later intent undoes that (TestRollingRestartConverges
		// failed that way). A fresh node is in nobody's left list and
		// sends no extra intents: each one is news to every member, so it
		// is gossiped to all, and one per exchange made 200 nodes joining
		// at once spend a third of their CPU decoding intents.
		// ignoreOld is false: with true, serf would drop every cluster
		// message older than the peer's event clock, messages in flight
		// included; events from before the first join stay dropped
		// (serf's eventMinTime), and the others a member has seen are
		// not delivered twice.
		announce := n.rejoined.Load()
		done := make(chan error, 1)
		go func() {
			var err error
			if announce {
				_, err = n.serf.Join([]string{peer}, false)
			} else {
				_, err = n.serf.Memberlist().Join([]string{peer})
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				n.log.Debug("state exchange after join failed", "peer", peer, "err", err)
			}
		case <-n.stop:
			return
		}
	}
}

// retryJoin keeps joining the seeds, with backoff, whenever the node sees
// no other alive member.
func (n *Node) retryJoin() {
	defer n.wg.Done()
	base := 100 * time.Millisecond
	if n.cfg.Profile != ProfileLocal {
		base = time.Second
	}
	backoff := base
	for {
		wait := backoff/2 + rand.N(backoff/2+1)
		t := time.NewTimer(wait)
		select {
		case <-n.stop:
			t.Stop()
			return
		case <-t.C:
		}
		if n.aliveOthers() > 0 {
			n.contacted()
			backoff = base
			continue
		}
		if !n.mayClaimNow() {
			n.poke() // the election delay may have passed
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := n.joinSeeds(ctx)
		cancel()
		if err == nil && n.aliveOthers() > 0 {
			backoff = base
			continue
		}
		backoff = min(backoff*2, 30*base)
	}
}

func (n *Node) aliveOthers() int {
	c := 0
	for _, m := range n.View().members {
		if m.Name != n.cfg.NodeName && m.Status == StatusAlive {
			c++
		}
	}
	return c
}

// verdicts is the channel of proofs for the loop; nil (never ready)
// without a trust root.
func (n *Node) verdicts() <-chan verdict {
	if n.ver == nil {
		return nil
	}
	return n.ver.results
}

func (n *Node) poke() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// tagsLocked returns the tags for the local state. n.mu must be held (or
// the Node not yet started).
func (n *Node) tagsLocked() map[string]string {
	t := map[string]string{
		tags.KeyDomain: n.cfg.Domain,
		tags.KeyRole:   n.cfg.roleTag(),
		tags.KeyState:  strconv.Itoa(int(n.state)),
	}
	if n.cfg.SubDomain != "" {
		t[tags.KeySubDomain] = n.cfg.SubDomain
	}
	if e := tags.EncodeMap(n.cfg.Endpoints, n.advHost); e != "" {
		t[tags.KeyEndpoints] = e
	}
	if p := tags.EncodeMap(n.cfg.Properties, ""); p != "" {
		t[tags.KeyProps] = p
	}
	if n.claim != 0 {
		t[tags.KeyClaim] = tags.EncodeEpoch(n.claim)
		if n.ver != nil {
			t[tags.KeyClaimSig] = n.signClaimLocked()
		}
	}
	if n.ver != nil {
		t[tags.KeyIdentity] = strconv.Itoa(n.ver.port())
	}
	return t
}

// tagger applies the latest local tags to serf. SetTags waits for the
// broadcast, so it runs here and never in the event loop. When the
// broadcast times out it tries again: memberlist has applied the tags
// locally, and a repeat raises the incarnation so peers that missed the
// first broadcast get a fresh one.
func (n *Node) tagger() {
	defer n.wg.Done()
	var last map[string]string
	var retry <-chan time.Time
	for {
		select {
		case <-n.stop:
			return
		case <-n.tagCh:
		case <-retry:
			retry, last = nil, nil
		}
		n.mu.Lock()
		t := n.tagsLocked()
		n.mu.Unlock()
		if reflect.DeepEqual(t, last) {
			continue
		}
		n.serfMu.Lock()
		err := n.serf.SetTags(t)
		n.serfMu.Unlock()
		if err != nil {
			n.log.Warn("cannot update tags; retrying", "err", err)
			retry = time.After(time.Second)
			continue
		}
		last = t
	}
}

func (n *Node) pushTags() {
	select {
	case n.tagCh <- struct{}{}:
	default:
	}
	n.poke()
}

func (n *Node) setState(s ServingState) {
	n.mu.Lock()
	n.state = s
	if s == Draining {
		// Stop writing before anyone else can be elected.
		n.claim = 0
		n.writable.Store(false)
	}
	n.mu.Unlock()
	n.pushTags()
}

// contacted records that the node reached its domain (or needs no seed),
// the first time it does. From then on the node may claim only once its
// view holds every member of the domain serf knew at that moment: serf
// hands its events on through a goroutine of its own, so when Join
// returns some of the members it brought may not have reached the loop
// yet, and a manager deciding on such a view would claim over a live
// active one (TestActiveIsSticky failed that way). Not for the loop's
// goroutine: serf's Members waits for a lock serf holds while it sends
// events to the loop.
func (n *Node) contacted() {
	if !n.contact.CompareAndSwap(false, true) {
		return
	}
	ms := n.serf.Members()
	names := make([]string, 0, len(ms))
	for i := range ms {
		if ms[i].Name == n.cfg.NodeName {
			continue
		}
		if m, ok := n.ofDomain(&ms[i]); ok {
			names = append(names, m.Name)
		}
	}
	n.catchUp <- names // never nil (the loop reads nil as nothing awaited); the only send: the swap succeeds once
}

// catchUpLimit bounds how long a node that made contact waits for its
// view to hold the members serf knew then before it may claim anyway.
const catchUpLimit = 5 * time.Second

// checkCaughtUp marks the node caught up once the view holds every member
// awaited since contact; it returns how long to wait before checking
// again (0: nothing awaited).
func (n *Node) checkCaughtUp() time.Duration {
	if n.awaiting == nil {
		return 0
	}
	for _, name := range n.awaiting {
		if _, ok := n.members[name]; !ok {
			if left := time.Until(n.awaitUntil); left > 0 {
				return left
			}
			n.log.Warn("the view still lacks a member serf knew at contact; a manager may claim from now on", "missing", name, "after", catchUpLimit)
			break
		}
	}
	n.awaiting = nil
	n.caughtUp.Store(true)
	return 0
}

// mayClaimNow reports whether the node may make a new claim: not during
// its first join attempt; once in contact with its domain, only when
// caught up (see contacted); alone with seeds it cannot reach, only with
// Config.Bootstrap and after the election delay.
func (n *Node) mayClaimNow() bool {
	if !n.joinDone.Load() {
		return false
	}
	if n.contact.Load() {
		return n.caughtUp.Load()
	}
	if !n.cfg.Bootstrap {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return !time.Now().Before(n.maySince)
}

// loop is the one goroutine that reads serf's events: it never blocks on
// anyone else, so gossip never stalls.
func (n *Node) loop() {
	defer n.wg.Done()
	var timer *time.Timer
	var timerC, recheckC <-chan time.Time
	rechecking := false
	for {
		select {
		case <-n.stop:
			if timer != nil {
				timer.Stop()
			}
			return
		case e := <-n.events:
			n.handle(e)
		case <-n.kick:
		case <-timerC:
			timerC = nil
		case <-recheckC:
			recheckC, rechecking = nil, true
			// Not on this goroutine: serf sends events while holding the
			// lock Members takes, and this loop must keep reading them.
			go func() { n.recheck <- n.serf.Members() }()
		case ms := <-n.recheck:
			rechecking = false
			n.recheckLeaving(ms)
		case names := <-n.catchUp:
			n.awaiting, n.awaitUntil = names, time.Now().Add(catchUpLimit)
		case vd := <-n.verdicts():
			n.ver.accept(vd)
		}
		// Take every event already queued before deciding anything: a
		// kick right after a join must not run the election on a view
		// that lacks the members the join just brought.
	drain:
		for range 1024 {
			select {
			case e := <-n.events:
				n.handle(e)
			default:
				break drain
			}
		}
		if n.leaving > 0 && recheckC == nil && !rechecking {
			recheckC = time.After(n.recheckEvery)
		}
		if n.lease != nil {
			n.lease.beat.Store(n.mono())
		}
		awaitWait := n.checkCaughtUp()
		wait := n.recompute(n.mayClaimNow())
		if awaitWait > 0 && (wait == 0 || awaitWait < wait) {
			wait = awaitWait
		}
		if wait > 0 && timerC == nil {
			timer = time.NewTimer(wait)
			timerC = timer.C
		}
	}
}

// recheckLeaving takes the current status of the members the view shows
// leaving from ms, serf's members. serf sends no event when a member it
// marked leaving turns alive again (a join intent newer than the leave: a
// node restarted right after it left, which serf marks leaving again
// when a member that has not yet seen it back sends it as left in a
// state exchange), so a view would otherwise show it leaving until its
// next update. A real leave ends in a leave event instead.
func (n *Node) recheckLeaving(ms []serf.Member) {
	for i := range ms {
		if m, ok := n.members[ms[i].Name]; ok && m.Status == StatusLeaving {
			n.apply(&ms[i])
		}
	}
}

func (n *Node) handle(e serf.Event) {
	switch e := e.(type) {
	case serf.MemberEvent:
		n.obs.event(e.Type.String(), len(e.Members))
		for i := range e.Members {
			sm := &e.Members[i]
			if sm.Name == n.cfg.NodeName {
				continue
			}
			if e.Type == serf.EventMemberReap {
				if old, ok := n.members[sm.Name]; ok {
					if old.Status == StatusLeaving {
						n.leaving--
					}
					delete(n.members, sm.Name)
					if n.ver != nil {
						n.ver.forget(sm.Name)
					}
					if i, found := slices.BinarySearch(n.names, sm.Name); found {
						n.names = slices.Delete(n.names, i, i+1)
					}
					n.dirty = true
				}
				continue
			}
			n.apply(sm)
		}
	case serf.UserEvent:
		n.msgs.deliver(e)
	case *serf.Query:
		n.answer(e)
	}
}

// ofDomain is serf's member sm as a Member, if it is one of this domain:
// what a view holds.
func (n *Node) ofDomain(sm *serf.Member) (Member, bool) {
	m, ok := memberFromSerf(sm)
	return m, ok && m.Domain == n.cfg.Domain
}

// apply stores serf's member sm in the view's members, if it is of this
// domain and anything changed.
func (n *Node) apply(sm *serf.Member) {
	m, ok := n.ofDomain(sm)
	if !ok {
		return
	}
	if n.ver != nil {
		n.ver.annotate(&m)
	}
	old, known := n.members[sm.Name]
	if !known {
		i, _ := slices.BinarySearch(n.names, sm.Name)
		n.names = slices.Insert(n.names, i, sm.Name)
	}
	if known && old.equal(&m) {
		return
	}
	if known && old.Status == StatusLeaving {
		n.leaving--
	}
	if m.Status == StatusLeaving {
		n.leaving++
	}
	n.members[sm.Name] = &m
	n.dirty = true
}

func (n *Node) selfLocked() Member {
	return Member{
		Name:        n.cfg.NodeName,
		Domain:      n.cfg.Domain,
		SubDomain:   n.cfg.SubDomain,
		Role:        n.cfg.Role,
		Observer:    n.cfg.Observer,
		ManagerMode: n.cfg.ManagerMode,
		Addr:        net.JoinHostPort(n.advHost, strconv.Itoa(n.advPort)),
		Endpoints:   n.cfg.Endpoints,
		Properties:  n.cfg.Properties,
		Status:      StatusAlive,
		State:       n.state,
		Claim:       n.claim,
		rawClaim:    n.claim,
		Trust:       n.selfTrust(),
	}
}

// recompute builds and publishes a new view if anything changed, and runs
// this node's part of the election; it claims only if mayClaim (see loop).
// It returns how long to wait before the election must be looked at again
// (0: no need).
func (n *Node) recompute(mayClaim bool) time.Duration {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return 0
	}
	self := n.selfLocked()
	list := make([]*Member, len(n.names))
	for i, name := range n.names {
		if name == self.Name {
			list[i] = &self // self.Claim may change below: the view sees it
		} else {
			list[i] = n.members[name]
		}
	}
	for _, m := range list {
		if validClaim(m.Claim) && m.Claim > n.maxSeen[m.SubDomain] {
			n.maxSeen[m.SubDomain] = m.Claim
		}
	}
	var wait time.Duration
	// Not isManager: a manager whose own certificate lapsed must still run
	// decideClaim, which then withdraws its claim.
	if self.Role == role.Manager && !self.Observer {
		if mayClaim && n.ver != nil && n.ver.undecided(self.SubDomain) {
			mayClaim = false // a verdict will kick the loop
		}
		claim := decideClaim(list, &self, n.cfg.Quorum, n.maxSeen[self.SubDomain], mayClaim)
		if claim != self.Claim {
			n.log.Info("election", "subdomain", self.SubDomain, "claim", claim, "previous", self.Claim)
			n.obs.election(self.SubDomain, self.Claim, claim)
			if claim != 0 && claim <= n.maxSeen[self.SubDomain] {
				n.log.Warn("election: the epoch round is at its bound (MaxEpochRound) and cannot rise; the claim may not be above the highest seen", "claim", claim, "highest", n.maxSeen[self.SubDomain])
			}
			n.claim = claim
			self.Claim = claim
			if claim > n.maxSeen[self.SubDomain] {
				n.maxSeen[self.SubDomain] = claim
			}
			if claim != 0 && n.lease != nil {
				n.lease.poke()
			}
			select {
			case n.tagCh <- struct{}{}:
			default:
			}
		}
		if !mayClaim && !n.contact.Load() && n.cfg.Bootstrap {
			wait = time.Until(n.maySince) + time.Millisecond
		}
	}
	actives, epochs := electAll(list)
	w := false
	if isManager(&self) && self.State != Draining && quorumMet(list, &self, n.cfg.Quorum) {
		if self.ManagerMode == ActiveActive {
			w = true
		} else if a, ok := actives[self.SubDomain]; ok && a.Name == self.Name {
			w = true
		}
	}
	n.writable.Store(w)
	n.mu.Unlock()

	old := n.view.Load()
	if old != nil && !n.dirty {
		if prev, ok := old.Member(self.Name); ok && prev.equal(&self) {
			return wait
		}
	}
	n.dirty = false
	v := &View{self: self.Name, members: list, actives: actives, epochs: epochs}
	if old != nil {
		v.version = old.version + 1
	} else {
		v.version = 1
	}
	n.view.Store(v)
	n.publish(v)
	return wait
}

func (n *Node) publish(v *View) {
	n.watchMu.Lock()
	defer n.watchMu.Unlock()
	for ch := range n.watchers {
		// Latest wins: a slow watcher skips views, it never blocks us.
		select {
		case <-ch:
		default:
		}
		ch <- v
	}
}

// View returns the latest view of the domain.
func (n *Node) View() *View {
	if v := n.view.Load(); v != nil {
		return v
	}
	n.mu.Lock()
	self := n.selfLocked()
	n.mu.Unlock()
	return &View{self: self.Name, members: []*Member{&self}}
}

// Watch returns a channel that receives the current view and then every
// new one. A slow reader skips intermediate views (it always gets the
// latest); it never slows the Node. The channel is closed when ctx ends
// or the Node closes.
func (n *Node) Watch(ctx context.Context) <-chan *View {
	ch := make(chan *View, 1)
	n.watchMu.Lock()
	select {
	case <-n.done:
		n.watchMu.Unlock()
		close(ch)
		return ch
	default:
	}
	n.watchers[ch] = struct{}{}
	ch <- n.View()
	n.watchMu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-n.done:
		}
		n.watchMu.Lock()
		if _, ok := n.watchers[ch]; ok {
			delete(n.watchers, ch)
			close(ch)
		}
		n.watchMu.Unlock()
	}()
	return ch
}

// Self returns this node's own member.
func (n *Node) Self() Member { return n.View().Self() }

// Members returns a snapshot of the domain's members, sorted by name.
func (n *Node) Members() []Member { return n.View().Members() }

// Name is the node's name.
func (n *Node) Name() string { return n.cfg.NodeName }

// Domain is the node's domain; it implements role.DomainReporter.
func (n *Node) Domain() string { return n.cfg.Domain }

// SubDomain is the node's sub-domain.
func (n *Node) SubDomain() string { return n.cfg.SubDomain }

// Role is the node's role (role.None for an observer); it implements role.State.
func (n *Node) Role() role.Role { return n.cfg.Role }

// Writable reports whether this node may write now: an active manager (any
// live manager in Active/Active mode) that is not draining and, in
// Active/Passive mode, holds its write lease (see [Profile]: it heard from
// its domain recently enough that no other manager can have been elected).
// Workers and observers never are. It implements role.State; it reads two
// atomics and the monotonic clock, and allocates nothing.
func (n *Node) Writable() bool {
	if !n.writable.Load() {
		return false
	}
	return n.lease == nil || n.lease.held()
}

// Epoch is the fencing token under which this node is writable, 0 if it is
// not the active manager. It implements role.EpochReporter.
func (n *Node) Epoch() uint64 {
	if !n.Writable() {
		return 0
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.claim
}

// Active returns the active manager of a sub-domain as this node sees it.
func (n *Node) Active(subDomain string) (Member, bool) { return n.View().Active(subDomain) }

// ActiveEndpoint returns the named endpoint of the active manager of this
// node's manager sub-domain ("mgt" unless the node is a manager of
// another). It implements role.ActiveReporter.
func (n *Node) ActiveEndpoint(name string) (string, bool) {
	sub := SubDomainManager
	if n.cfg.Role == role.Manager {
		sub = n.cfg.SubDomain
	}
	m, ok := n.Active(sub)
	if !ok {
		return "", false
	}
	return m.Endpoint(name)
}

// Ready marks the node serving: a node started with Config.DeferServing
// once it is ready for traffic, or a drained node that is to serve again
// (it comes back as a stand-by if it was the active manager).
func (n *Node) Ready(ctx context.Context) error {
	if err := n.checkOpen(); err != nil {
		return err
	}
	n.setState(Serving)
	return ctx.Err()
}

func (n *Node) checkOpen() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	return nil
}

// Done is closed when the Node has stopped (after Leave or Close).
func (n *Node) Done() <-chan struct{} { return n.done }

// Close stops the Node without leaving: peers will mark it failed. It is
// idempotent and waits for every goroutine of the Node to end.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		<-n.done
		return nil
	}
	n.closed = true
	n.writable.Store(false)
	n.mu.Unlock()
	close(n.stop)
	err := n.serf.Shutdown()
	if n.ver != nil {
		n.ver.srv.Close()
	}
	n.wg.Wait()
	n.obs.unregister()
	n.watchMu.Lock()
	for ch := range n.watchers {
		delete(n.watchers, ch)
		close(ch)
	}
	close(n.done)
	n.watchMu.Unlock()
	return err
}

// domainFilter keeps members of other domains out of the gossip pool. It
// is memberlist's merge and alive delegate rather than serf's merge
// delegate: serf would decode every member's tags for it, on every alive
// message received (duplicates included), which cost a quarter of the CPU
// of 100 nodes joining at once; the filter reads the domain tag alone, in
// place, without allocating.
type domainFilter struct{ n *Node }

// NotifyMerge implements memberlist.MergeDelegate: a join's remote state.
// It also notes whether the state lists this node as left or dead (see
// Node.rejoined).
func (d *domainFilter) NotifyMerge(peers []*memberlist.Node) error {
	for _, p := range peers {
		if err := d.check(p); err != nil {
			return err
		}
		if p.Name == d.n.cfg.NodeName && p.State != memberlist.StateAlive {
			d.n.rejoined.Store(true)
		}
	}
	return nil
}

// NotifyAlive implements memberlist.AliveDelegate: every member learned or
// refreshed by gossip.
func (d *domainFilter) NotifyAlive(p *memberlist.Node) error { return d.check(p) }

func (d *domainFilter) check(p *memberlist.Node) error {
	if tags.HasDomain(p.Meta, d.n.cfg.Domain) {
		return nil
	}
	got, _ := tags.Domain(p.Meta)
	d.n.rejection.Store(&got)
	d.n.obs.rejected()
	return fmt.Errorf("%w: member %q is in domain %q, not %q", ErrForeignDomain, p.Name, got, d.n.cfg.Domain)
}

// encodeFrom prefixes a payload with the sender's name.
func encodeFrom(from string, payload []byte) []byte {
	b := make([]byte, 0, binary.MaxVarintLen32+len(from)+len(payload))
	b = binary.AppendUvarint(b, uint64(len(from)))
	b = append(b, from...)
	return append(b, payload...)
}

func decodeFrom(b []byte) (string, []byte, bool) {
	l, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < l {
		return "", nil, false
	}
	return string(b[k : k+int(l)]), b[k+int(l):], true
}

// RTT estimates the round-trip time to the named member from serf's
// network coordinates (Vivaldi). ok is false when either coordinate is not
// known yet.
func (n *Node) RTT(member string) (time.Duration, bool) {
	self, err := n.serf.GetCoordinate()
	if err != nil {
		return 0, false
	}
	other, ok := n.serf.GetCachedCoordinate(member)
	if !ok || other == nil {
		return 0, false
	}
	return self.DistanceTo(other), true
}
