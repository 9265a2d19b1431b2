package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/carbonkit/carbon/role"
)

// Remote control: an operator drains or removes a member from another
// process (the carbon CLI), the way serf's force-leave and Consul's
// maintenance mode do. The request is a serf query addressed to the one
// member; the member decides, and honours it only when the sender is a
// manager of its domain: a member whose role is manager, an observer with
// Role manager included (an operator's tool). Without a trust root that
// role is what the sender's tags say, as roles are then for the election
// too. With a trust root (Config.Trust) the sender's name in a serf query
// is not authenticated, so the request is signed with the sender's key
// (trust.SignControl) and honoured only when the sender is a verified
// member whose certificate names the manager role, the signature checks
// against that certificate, it was signed within controlWindow of the
// target's clock, and its nonce is new (every member sees a query's
// payload, so anyone with the gossip key could replay it).

// ErrNotManager is returned by DrainMember and LeaveMember when the member
// refused because this node is not a manager.
var ErrNotManager = errors.New("cluster: refused: only a manager may drain or remove another member")

// ErrNoMember is returned by DrainMember and LeaveMember for a name that
// is not an alive member of the view, or that did not answer.
var ErrNoMember = errors.New("cluster: no such alive member")

const queryControl = "_carbon/control"

// Operations and answers of queryControl: the payload is an operation
// byte followed by the target's name, the answer a code byte followed by a
// message for the sender.
const (
	controlDrain byte = 'd'
	controlLeave byte = 'l'

	controlAccepted byte = 'a'
	controlRefused  byte = 'r'
	controlUnknown  byte = 'u' // the sender is not in the target's view yet
	controlBad      byte = 'b'
)

// controlWindow is how far a signed request's time may be from the
// target's clock: the hosts' clock skew plus the query's delivery.
// Nonces are remembered as long, so a replay is refused either way.
const controlWindow = 2 * time.Minute

// controlTimeout bounds a drain or leave the member runs on request: the
// time Drain waits for every member to see it draining, and a hand-over.
const controlTimeout = 30 * time.Second

// DrainMember asks the named member to drain, as its own [Node.Drain]
// would: balancers stop sending it new work, and if it is the active
// manager it hands over first. It returns once the member accepted (it
// then drains in the background; watch its [Member.State]), with an error
// wrapping [ErrNotManager] if it refused, or [ErrNoMember] if no alive
// member of that name answered before ctx ended.
func (n *Node) DrainMember(ctx context.Context, name string) error {
	return n.control(ctx, controlDrain, name)
}

// LeaveMember asks the named member to leave the domain gracefully, as its
// own [Node.Leave] would (an active manager hands over first); its Node
// then stops ([Node.Done]), and a server built on it should exit. Returns
// and errors are as for [Node.DrainMember].
func (n *Node) LeaveMember(ctx context.Context, name string) error {
	return n.control(ctx, controlLeave, name)
}

func (n *Node) control(ctx context.Context, op byte, name string) error {
	verb := map[byte]string{controlDrain: "drain", controlLeave: "leave"}[op]
	if err := n.checkOpen(); err != nil {
		return err
	}
	if name == n.cfg.NodeName {
		return fmt.Errorf("cluster: %s %q: that is this node; call its own Drain or Leave", verb, name)
	}
	qt := 500 * time.Millisecond
	if n.cfg.Profile != ProfileLocal {
		qt = 2 * time.Second
	}
	last := fmt.Errorf("%w: %q did not answer", ErrNoMember, name)
	for {
		if m, ok := n.View().Member(name); !ok || m.Status != StatusAlive {
			return fmt.Errorf("%w: %q is not an alive member of domain %q as this node sees it", ErrNoMember, name, n.cfg.Domain)
		}
		payload, err := n.controlPayload(op, verb, name)
		if err != nil {
			return fmt.Errorf("cluster: %s %q: %w", verb, name, err)
		}
		n.serfMu.Lock()
		resp, err := n.serf.Query(queryControl, payload, &serf.QueryParam{FilterNodes: []string{name}, Timeout: qt})
		n.serfMu.Unlock()
		if err != nil {
			return fmt.Errorf("cluster: %s %q: %w", verb, name, err)
		}
		for r := range resp.ResponseCh() {
			if r.From != name || len(r.Payload) == 0 {
				continue
			}
			msg := string(r.Payload[1:])
			switch r.Payload[0] {
			case controlAccepted:
				resp.Close()
				return nil
			case controlRefused:
				resp.Close()
				return fmt.Errorf("%w: %s", ErrNotManager, msg)
			case controlUnknown:
				last = fmt.Errorf("cluster: %s %q: %s", verb, name, msg)
			default:
				resp.Close()
				return fmt.Errorf("cluster: %s %q: %s", verb, name, msg)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: %s %q: %w (%w)", verb, name, last, context.Cause(ctx))
		case <-n.stop:
			return ErrClosed
		case <-time.After(qt / 5):
		}
	}
}

// answerControl answers a control query; called by the event loop, so the
// sender is looked up in the loop's own members, and the drain or leave
// runs on a goroutine of its own (Leave closes the Node, which waits for
// the loop).
func (n *Node) answerControl(q *serf.Query) {
	respond := func(code byte, format string, args ...any) {
		if err := q.Respond(append([]byte{code}, fmt.Sprintf(format, args...)...)); err != nil {
			n.log.Debug("cannot answer query", "query", q.Name, "err", err)
		}
	}
	req, ok := parseControl(q.Payload)
	if !ok || req.to != n.cfg.NodeName {
		respond(controlBad, "malformed control request")
		return
	}
	op, from := req.op, q.SourceNode()
	verb := map[byte]string{controlDrain: "drain", controlLeave: "leave"}[op]
	if verb == "" {
		respond(controlBad, "unknown control operation %q", op)
		return
	}
	m, ok := n.ls.members[from]
	if !ok || m.Status != StatusAlive {
		respond(controlUnknown, "%s does not see %s as an alive member yet", n.cfg.NodeName, from)
		return
	}
	if n.ver != nil {
		if err := n.ver.checkControl(m, verb, req); err != nil {
			n.log.Warn("refused a control request", "op", verb, "from", from, "err", err)
			respond(controlRefused, "%s refuses to %s at the request of %s: %v", n.cfg.NodeName, verb, from, err)
			return
		}
	}
	if m.Role != role.Manager {
		n.log.Warn("refused a control request from a member that is not a manager", "op", verb, "from", from, "role", m.Role.String())
		respond(controlRefused, "%s refuses to %s at the request of %s, whose role is %s, not manager", n.cfg.NodeName, verb, from, m.Role)
		return
	}
	n.log.Info("control request from a manager", "op", verb, "from", from)
	respond(controlAccepted, "%s will %s", n.cfg.NodeName, verb)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
		defer cancel()
		var err error
		if op == controlDrain {
			err = n.Drain(ctx)
		} else {
			err = n.Leave(ctx)
		}
		if err != nil && !errors.Is(err, ErrClosed) {
			n.log.Warn("control request did not complete", "op", verb, "from", from, "err", err)
		}
	}()
}
