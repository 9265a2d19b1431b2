//go:build linux

package netlab

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Dialer returns a DialContext that opens its connections from inside
// host's namespace, for an http.Transport or grpc.WithContextDialer: the
// lab's clients reach the nodes as a host of the lab would.
//
// Each dial runs on a goroutine locked to an OS thread that enters the
// namespace and is never unlocked, so the Go runtime ends that thread when
// the goroutine returns and no other goroutine ever runs in the namespace.
// A socket belongs to the namespace it was made in, so the connection stays
// there for its lifetime.
func (n *Net) Dialer(host string) (func(ctx context.Context, network, addr string) (net.Conn, error), error) {
	h, ok := n.Host(host)
	if !ok {
		return nil, fmt.Errorf("netlab: Dialer: no such host %q", host)
	}
	path := "/var/run/netns/" + h.NS
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		done := make(chan result, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
			f, err := os.Open(path)
			if err != nil {
				done <- result{err: fmt.Errorf("netlab: open namespace %s: %w", h.NS, err)}
				return
			}
			err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
			f.Close()
			if err != nil {
				done <- result{err: fmt.Errorf("netlab: enter namespace %s: %w", h.NS, err)}
				return
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			done <- result{c, err}
		}()
		select {
		case r := <-done:
			return r.c, r.err
		case <-ctx.Done():
			go func() {
				if r := <-done; r.c != nil {
					r.c.Close()
				}
			}()
			return nil, ctx.Err()
		}
	}, nil
}
