package cluster

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// errLeaving fails the streams of a node that is leaving (see leaveGuard).
var errLeaving = errors.New("cluster: node is leaving: it sends no state")

// leaveGuard wraps a node's memberlist transport so that, once the node
// has begun to leave, it sends nothing over a stream: its dials fail,
// streams it is offered are closed, and writes on streams already open
// fail. Packets (gossip, probes) pass as before, so the leave intent and
// memberlist's own leave still go out.
//
// The reason is serf's (v0.11.0) push/pull: it sends the status time of a
// member it sees leaving as if it were a join time, and the leaving node
// sees itself leaving from the moment it takes its own leave until
// memberlist reports it gone. A member that exchanged state with it in
// that window, before the leave intent reached it, then takes the intent
// for old news, ignores it (and does not pass it on), and marks the node
// failed when memberlist reports it gone. When every member did so, no
// view ever showed the node left (TestLeaveSeenLeftDespiteStateExchanges).
// Members that got the intent still pass the leave on in their own
// exchanges, so one that missed it learns it from them.
type leaveGuard struct {
	memberlist.NodeAwareTransport
	leaving func() bool
	streams chan net.Conn
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

func newLeaveGuard(t memberlist.Transport, leaving func() bool) *leaveGuard {
	na, ok := t.(memberlist.NodeAwareTransport)
	if !ok {
		na = nodeAware{t}
	}
	g := &leaveGuard{
		NodeAwareTransport: na,
		leaving:            leaving,
		streams:            make(chan net.Conn),
		stop:               make(chan struct{}),
		done:               make(chan struct{}),
	}
	go g.forward()
	return g
}

// forward hands memberlist the streams the transport accepts.
func (g *leaveGuard) forward() {
	defer close(g.done)
	in := g.NodeAwareTransport.StreamCh()
	for {
		select {
		case c, ok := <-in:
			if !ok {
				return // a transport that closes its channel has shut down
			}
			if g.leaving() {
				_ = c.Close()
				continue
			}
			select {
			case g.streams <- guardedConn{c, g.leaving}:
			case <-g.stop:
				_ = c.Close()
				return
			}
		case <-g.stop:
			return
		}
	}
}

// StreamCh implements memberlist.Transport.
func (g *leaveGuard) StreamCh() <-chan net.Conn { return g.streams }

// DialTimeout implements memberlist.Transport.
func (g *leaveGuard) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return g.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (g *leaveGuard) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if g.leaving() {
		return nil, errLeaving
	}
	c, err := g.NodeAwareTransport.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return guardedConn{c, g.leaving}, nil
}

// Shutdown implements memberlist.Transport.
func (g *leaveGuard) Shutdown() error {
	err := g.NodeAwareTransport.Shutdown()
	g.release()
	return err
}

// release stops the guard's goroutine and leaves the transport as it is.
func (g *leaveGuard) release() {
	g.once.Do(func() { close(g.stop) })
	<-g.done
}

// guardedConn is a stream that fails writes once its node is leaving.
type guardedConn struct {
	net.Conn
	leaving func() bool
}

func (c guardedConn) Write(p []byte) (int, error) {
	if c.leaving() {
		return 0, errLeaving
	}
	return c.Conn.Write(p)
}

// nodeAware adapts a plain memberlist.Transport, as memberlist itself
// does for one that is not node-aware.
type nodeAware struct{ memberlist.Transport }

func (t nodeAware) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

func (t nodeAware) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}
