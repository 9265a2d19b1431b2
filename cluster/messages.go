package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/hashicorp/serf/serf"
)

// MaxMessageSize is the largest cluster message: its name, its payload and
// the sender's name together. Messages ride in gossip packets; bigger data
// belongs on an endpoint of the sender.
const MaxMessageSize = 1024

// ErrMessageTooLarge is returned by Broadcast for a message over
// [MaxMessageSize].
var ErrMessageTooLarge = errors.New("cluster: message too large")

// ErrBadMessageName is returned by Broadcast and Handle for an empty name,
// a name over 64 bytes, or one starting with '_' (reserved).
var ErrBadMessageName = errors.New("cluster: bad message name")

const (
	userPrefix   = "c/"
	messageQueue = 1024
)

// Message is a cluster message (Carbon's ClusteringMessage): a named
// payload broadcast to every member of a domain.
type Message struct {
	// Name says what the message is, e.g. "cache.invalidate".
	Name string
	// Payload is the message body; handlers must not modify it.
	Payload []byte
	// From is the name of the member that sent it.
	From string
}

// Handler handles cluster messages of one name. Handlers are called one
// at a time, in the order messages arrive, from one goroutine of the Node:
// a slow handler delays other messages but never gossip. When more than
// 1024 messages wait, new ones are dropped and logged.
type Handler func(Message)

type messenger struct {
	n  *Node
	mu sync.RWMutex
	hs map[string]Handler
	q  chan Message
}

func newMessenger(n *Node) *messenger {
	return &messenger{n: n, hs: map[string]Handler{}, q: make(chan Message, messageQueue)}
}

func checkMessageName(name string) error {
	if name == "" || len(name) > 64 || strings.HasPrefix(name, "_") {
		return fmt.Errorf("%w %q: want 1 to 64 bytes, not starting with '_'", ErrBadMessageName, name)
	}
	return nil
}

// Handle registers h for messages named name, replacing any handler
// before it; a nil h removes it. Messages with no handler are dropped.
func (n *Node) Handle(name string, h Handler) error {
	if err := checkMessageName(name); err != nil {
		return err
	}
	n.msgs.mu.Lock()
	defer n.msgs.mu.Unlock()
	if h == nil {
		delete(n.msgs.hs, name)
	} else {
		n.msgs.hs[name] = h
	}
	return nil
}

// Broadcast sends a message to every other member of the domain, at most
// once each (serf drops duplicates by Lamport time). Delivery is
// best-effort gossip: members that are down when it is sent do not get it
// later. The sender's own handlers are not called.
func (n *Node) Broadcast(ctx context.Context, name string, payload []byte) error {
	if err := checkMessageName(name); err != nil {
		return err
	}
	if size := len(name) + len(payload) + len(n.cfg.NodeName); size > MaxMessageSize {
		return fmt.Errorf("%w: %q is %d bytes with its name and sender, over the %d-byte limit; send a reference and serve the data from an endpoint",
			ErrMessageTooLarge, name, size, MaxMessageSize)
	}
	if err := n.checkOpen(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := n.serf.UserEvent(userPrefix+name, encodeFrom(n.cfg.NodeName, payload), false); err != nil {
		return fmt.Errorf("cluster: broadcast %q: %w", name, err)
	}
	return nil
}

// deliver is called by the event loop; it must not block.
func (m *messenger) deliver(e serf.UserEvent) {
	name, ok := strings.CutPrefix(e.Name, userPrefix)
	if !ok {
		return
	}
	from, payload, ok := decodeFrom(e.Payload)
	if !ok {
		m.n.log.Warn("malformed cluster message dropped", "name", name, "bytes", len(e.Payload))
		return
	}
	if from == m.n.cfg.NodeName {
		return
	}
	select {
	case m.q <- Message{Name: name, Payload: payload, From: from}:
		m.n.obs.message(name, false)
	default:
		m.n.obs.message(name, true)
		m.n.log.Warn("cluster message queue full, message dropped", "name", name, "from", from)
	}
}

func (m *messenger) run() {
	defer m.n.wg.Done()
	for {
		select {
		case <-m.n.stop:
			return
		case msg := <-m.q:
			m.mu.RLock()
			h := m.hs[msg.Name]
			m.mu.RUnlock()
			if h != nil {
				h(msg)
			}
		}
	}
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
