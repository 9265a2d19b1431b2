package cluster

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/serf/serf"

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

	// Local state, guarded by mu; the loop builds the self member from
	// it. Holding mu stalls the loop (recompute takes it), which the lease
	// tests use to stand for a frozen process.
	mu       sync.Mutex
	state    ServingState
	claim    uint64
	advHost  string
	advPort  int
	closed   bool
	left     bool
	maySince time.Time // when the node may claim without contact
	// pushed is closed when the last hand-over push (pushStateTo) has
	// ended; nil if there was none.
	pushed chan struct{}

	// phase is how far the node is on its way to being allowed to claim
	// (joinPhase: first join attempt, contact, catch-up); any goroutine
	// reads it, the join path and the loop advance it.
	phase phaseState
	// elected is the loop's decision, at its last view, that this node is
	// the writer of its sub-domain (see decideWritable; Writable adds the
	// lease). Close and Drain clear it at once.
	elected atomic.Bool
	view    atomic.Pointer[View]
	// rejection is the last foreign domain the domain filter saw.
	rejection atomic.Pointer[string]
	// rejoined is a fact learned once, not a phase: a member's state
	// listed this node's name as left or dead, so the domain knew it
	// before this process (a restart); see syncAfterJoin.
	rejoined atomic.Bool
	// staleSelf: a joined member's state listed this node's name at
	// another address (see reclaim.go).
	staleSelf atomic.Bool
	// quitting is set when Leave announces the leave: from then on the
	// node sends no state over a stream (see leaveGuard).
	quitting atomic.Bool

	// ls is touched by the loop goroutine only (see loopState).
	ls loopState
	// recheck brings the loop a copy of serf's members (see
	// recheckLeaving); recheckEvery is how long a member may look
	// leaving before the loop asks for one.
	recheck      chan []serf.Member
	recheckEvery time.Duration
	// catchUp brings the loop, once, the members serf knew when the node
	// made contact (see contacted).
	catchUp chan []string

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
	// otherwise). signed is this node's signed claim (trust on): for the
	// epoch it claims, or else for next, the epoch it would claim next;
	// both guarded by mu.
	ver    *verifier
	signed signedClaim
	next   uint64
	// revision is what SetRevision reported, nil if nothing; guarded by mu.
	revision *RevisionID
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

// setState changes the node's serving state and has the tagger gossip it.
func (n *Node) setState(s ServingState) {
	n.mu.Lock()
	n.state = s
	if s == Draining {
		// Stop writing before anyone else can be elected.
		n.claim = 0
		n.elected.Store(false)
	}
	n.mu.Unlock()
	n.pushTags()
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
	n.elected.Store(false)
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
