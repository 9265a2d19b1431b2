package memnet

import (
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// errDialTimeout is what a dial returns when latency outlasts its timeout;
// it is a net.Error whose Timeout() is true, like a real dial timeout.
var errDialTimeout error = os.ErrDeadlineExceeded

// pipeLink is one stream: two conns joined by two one-way buffers. The
// network keeps it to reset it when a fault separates its ends.
type pipeLink struct {
	net    *Network
	a, b   string     // canonical addresses of the dialer and the listener
	ta, tb *Transport // dialer and listener
	ca, cb *conn      // dialer's end and listener's end
}

func newPipeLink(n *Network, ta, tb *Transport) *pipeLink {
	ab, ba := newBuffer(), newBuffer()
	l := &pipeLink{net: n, a: ta.addr, b: tb.addr, ta: ta, tb: tb}
	l.ca = newConn(l, ba, ab, tcpAddr(ta.ap), tcpAddr(tb.ap))
	l.cb = newConn(l, ab, ba, tcpAddr(tb.ap), tcpAddr(ta.ap))
	return l
}

// reset breaks both directions: pending and future reads and writes on
// either end fail with ErrReset.
func (l *pipeLink) reset() {
	l.net.stats.streamsReset.Add(1)
	l.ca.rd.fail(ErrReset)
	l.ca.wr.fail(ErrReset)
}

// buffer is one direction of a stream. Writes never block: the buffer
// grows as needed, which is fine for memberlist's bounded messages and
// spares us the deadlocks of an unbuffered net.Pipe.
type buffer struct {
	mu      sync.Mutex
	data    []byte
	eof     bool          // the writer closed: reads drain, then io.EOF
	gone    bool          // the reader closed: writes fail
	err     error         // reset: reads and writes fail at once
	changed chan struct{} // closed and replaced on every change
}

func newBuffer() *buffer { return &buffer{changed: make(chan struct{})} }

// signal wakes every waiting reader; b.mu must be held.
func (b *buffer) signal() {
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *buffer) fail(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
		b.data = nil
		b.signal()
	}
	b.mu.Unlock()
}

func (b *buffer) closeWrite() {
	b.mu.Lock()
	b.eof = true
	b.signal()
	b.mu.Unlock()
}

func (b *buffer) closeRead() {
	b.mu.Lock()
	b.gone = true
	b.data = nil
	b.mu.Unlock()
}

// conn is one end of a stream. It implements net.Conn with working
// deadlines, which memberlist relies on to bound every stream exchange.
type conn struct {
	link          *pipeLink
	rd, wr        *buffer
	local, remote net.Addr
	readDL        deadline
	writeDL       deadline
	once          sync.Once
	closed        chan struct{}
}

func newConn(l *pipeLink, rd, wr *buffer, local, remote net.Addr) *conn {
	return &conn{
		link: l, rd: rd, wr: wr, local: local, remote: remote,
		readDL: makeDeadline(), writeDL: makeDeadline(),
		closed: make(chan struct{}),
	}
}

func (c *conn) opErr(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	return &net.OpError{Op: op, Net: "memnet", Source: c.local, Addr: c.remote, Err: err}
}

// Read implements net.Conn.
func (c *conn) Read(p []byte) (int, error) {
	for {
		select {
		case <-c.closed:
			return 0, c.opErr("read", net.ErrClosed)
		case <-c.readDL.wait():
			return 0, c.opErr("read", os.ErrDeadlineExceeded)
		default:
		}
		b := c.rd
		b.mu.Lock()
		switch {
		case b.err != nil:
			err := b.err
			b.mu.Unlock()
			return 0, c.opErr("read", err)
		case len(b.data) > 0:
			n := copy(p, b.data)
			b.data = b.data[n:]
			if len(b.data) == 0 {
				b.data = nil // let the backing array go
			}
			b.mu.Unlock()
			return n, nil
		case len(p) == 0:
			b.mu.Unlock()
			return 0, nil
		case b.eof:
			b.mu.Unlock()
			return 0, io.EOF
		}
		changed := b.changed
		b.mu.Unlock()
		select {
		case <-changed:
		case <-c.closed:
		case <-c.readDL.wait():
		}
	}
}

// Write implements net.Conn. It never blocks.
func (c *conn) Write(p []byte) (int, error) {
	select {
	case <-c.closed:
		return 0, c.opErr("write", net.ErrClosed)
	case <-c.writeDL.wait():
		return 0, c.opErr("write", os.ErrDeadlineExceeded)
	default:
	}
	b := c.wr
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.err != nil:
		return 0, c.opErr("write", b.err)
	case b.gone:
		return 0, c.opErr("write", ErrReset) // the peer closed: EPIPE/RST
	}
	if len(p) > 0 {
		b.data = append(b.data, p...)
		b.signal()
	}
	return len(p), nil
}

// Close implements net.Conn: the peer reads what was written, then
// io.EOF; its writes fail.
func (c *conn) Close() error {
	first := false
	c.once.Do(func() {
		first = true
		close(c.closed)
		c.wr.closeWrite()
		c.rd.closeRead()
		c.readDL.set(time.Time{})
		c.writeDL.set(time.Time{})
		c.link.net.forget(c.link)
	})
	if !first {
		return c.opErr("close", net.ErrClosed)
	}
	return nil
}

// LocalAddr implements net.Conn; it is a *net.TCPAddr.
func (c *conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr implements net.Conn; it is a *net.TCPAddr.
func (c *conn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline implements net.Conn.
func (c *conn) SetDeadline(t time.Time) error {
	c.readDL.set(t)
	c.writeDL.set(t)
	return nil
}

// SetReadDeadline implements net.Conn.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.readDL.set(t)
	return nil
}

// SetWriteDeadline implements net.Conn.
func (c *conn) SetWriteDeadline(t time.Time) error {
	c.writeDL.set(t)
	return nil
}

// deadline is a channel closed when a deadline passes, as in net.Pipe.
type deadline struct {
	mu     *sync.Mutex
	timer  *time.Timer
	cancel chan struct{}
}

func makeDeadline() deadline {
	return deadline{mu: new(sync.Mutex), cancel: make(chan struct{})}
}

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired: wait for it to close cancel
	}
	d.timer = nil
	closed := isClosed(d.cancel)
	if t.IsZero() {
		if closed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.cancel = make(chan struct{})
		}
		cancel := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(cancel) })
		return
	}
	if !closed {
		close(d.cancel)
	}
}

func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
