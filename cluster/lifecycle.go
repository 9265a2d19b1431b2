package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/carbonkit/carbon/internal/tags"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

const querySeen = "_carbon/seen"

// answer responds to our internal queries; called by the event loop with
// the view up to date with every event before the query.
func (n *Node) answer(q *serf.Query) {
	switch q.Name {
	case querySeen:
		st := byte(255)
		n.recompute(false) // mid-drain: keep or withdraw a claim, never make one
		if m, ok := n.View().Member(string(q.Payload)); ok {
			st = byte(m.State)
		}
		if err := q.Respond([]byte{st}); err != nil {
			n.log.Debug("cannot answer query", "query", q.Name, "err", err)
		}
	case queryControl:
		n.answerControl(q)
	}
}

// Drain marks the node draining: balancers stop sending it new work while
// it finishes what is in flight. If it is the active manager, it stops
// accepting writes at once and Drain waits until a stand-by has taken
// over. Drain then returns once every alive member has seen it draining,
// or with ctx's error if that takes longer than ctx allows (the node
// stays draining either way). Pass a ctx with a deadline.
func (n *Node) Drain(ctx context.Context) error {
	if err := n.checkOpen(); err != nil {
		return err
	}
	ctx, span := n.obs.tracer.Start(ctx, "cluster.Drain")
	defer span.End()
	err := n.drain(ctx)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}

func (n *Node) drain(ctx context.Context) error {
	if err := n.handOver(ctx); err != nil {
		return err
	}
	return n.waitSeen(ctx, Draining)
}

// handOver sets the node draining and, if it was the active manager,
// waits until another manager is active.
func (n *Node) handOver(ctx context.Context) error {
	n.mu.Lock()
	wasActive := n.claim != 0
	n.mu.Unlock()
	n.setState(Draining)
	if !wasActive {
		return nil
	}
	n.pushStateTo(ctx, standbys(n.View(), n.cfg.SubDomain, n.cfg.NodeName))
	views := n.Watch(ctx)
	for v := range views {
		if a, ok := v.Active(n.cfg.SubDomain); ok && a.Name != n.cfg.NodeName {
			n.log.Info("handed over", "to", a.Name, "epoch", a.Claim)
			return nil
		}
		if len(standbys(v, n.cfg.SubDomain, n.cfg.NodeName)) == 0 {
			return nil // no one to hand over to
		}
	}
	return fmt.Errorf("cluster: hand-over of the active manager: %w", context.Cause(ctx))
}

// pushStateTo sends this node's state, once its draining tags are applied,
// straight to the given members with a push/pull exchange over TCP (a serf
// join), so that a stand-by learns of the hand-over at once instead of
// waiting for gossip to reach it.
func (n *Node) pushStateTo(ctx context.Context, ms []Member) {
	if len(ms) == 0 {
		return
	}
	addrs := make([]string, len(ms))
	for i, m := range ms {
		addrs[i] = m.Addr
	}
	pushed := make(chan struct{})
	n.mu.Lock()
	n.pushed = pushed
	n.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer close(pushed)
		for n.serf.LocalMember().Tags[tags.KeyState] != tags.StateDraining {
			select {
			case <-ctx.Done():
				return
			case <-n.stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
		if _, err := n.serf.Join(addrs, true); err != nil {
			n.log.Debug("direct hand-over push failed; gossip will carry it", "err", err)
		}
	}()
}

// standbys returns the alive, non-draining managers of sub other than self.
func standbys(v *View, sub, self string) []Member {
	var out []Member
	for _, m := range v.members {
		if isManager(m) && m.SubDomain == sub && m.Name != self && m.Status == StatusAlive && m.State != Draining {
			out = append(out, *m)
		}
	}
	return out
}

// waitSeen queries the domain until every alive member reports seeing this
// node in state st.
func (n *Node) waitSeen(ctx context.Context, st ServingState) error {
	qt := 500 * time.Millisecond
	if n.cfg.Profile != ProfileLocal {
		qt = 2 * time.Second
	}
	for {
		pending := map[string]bool{}
		for _, m := range n.View().members {
			if m.Status == StatusAlive && m.Name != n.cfg.NodeName {
				pending[m.Name] = true
			}
		}
		if len(pending) == 0 {
			return nil
		}
		n.serfMu.Lock()
		resp, err := n.serf.Query(querySeen, []byte(n.cfg.NodeName), &serf.QueryParam{Timeout: qt})
		n.serfMu.Unlock()
		if err != nil {
			return fmt.Errorf("cluster: confirm %s: %w", st, err)
		}
		for r := range resp.ResponseCh() {
			if len(r.Payload) == 1 && ServingState(r.Payload[0]) == st {
				delete(pending, r.From)
			}
			if len(pending) == 0 {
				resp.Close()
				break
			}
		}
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: %d members have not seen this node %s: %w", len(pending), st, context.Cause(ctx))
		case <-n.stop:
			return ErrClosed
		default:
		}
	}
}

// Leave leaves the domain gracefully: an active manager hands over first
// (as in Drain), then the node announces its leave so peers mark it left
// rather than failed, and stops. From the announcement on, the node
// answers no state exchange (push/pull) and starts none: serf would send
// its leave as a join time, and a peer holding that time ignores the leave
// intent and marks the node failed. It is idempotent; after Close it
// returns ErrClosed.
func (n *Node) Leave(ctx context.Context) error {
	n.mu.Lock()
	if n.closed {
		left := n.left
		n.mu.Unlock()
		if left {
			return nil
		}
		return ErrClosed
	}
	n.left = true
	n.mu.Unlock()
	ctx, span := n.obs.tracer.Start(ctx, "cluster.Leave", trace.WithAttributes(attribute.String("carbon.node", n.cfg.NodeName)))
	defer span.End()
	var herr error
	if n.Writable() && n.cfg.ManagerMode == ActivePassive {
		herr = n.handOver(ctx)
	}
	// A hand-over push still under way announces this node's join once
	// its exchange is done (serf.Join does): after the leave, that would
	// make peers ignore the leave. It ends with ctx at the latest.
	n.mu.Lock()
	pushed := n.pushed
	n.mu.Unlock()
	if pushed != nil {
		select {
		case <-pushed:
		case <-ctx.Done():
		}
	}
	n.quitting.Store(true)
	done := make(chan error, 1)
	go func() { done <- n.serf.Leave() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = context.Cause(ctx)
	}
	if cerr := n.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = herr
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}
