package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNoContact is returned by [Node.Synced] when no seed was reached in
// time.
var ErrNoContact = errors.New("cluster: no seed reached")

// Synced returns once the node has reached its domain (one of its seeds
// answered; at once for a node without seeds) and its view holds every
// member serf learned from that first contact, or after ctx ends: with
// an error wrapping [ErrNoContact] if no seed was reached, or ctx's error
// if the view was still filling. A short-lived tool (the carbon CLI) calls
// it after Join so that what it shows is the whole domain, not the part
// gossip has brought so far; Join itself returns as soon as serf has
// joined, to let servers start at once.
func (n *Node) Synced(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for !n.phase.load().caughtUp() {
		select {
		case <-ctx.Done():
			if !n.phase.load().contacted() {
				return fmt.Errorf("%w: seeds %v of domain %q did not answer: %w", ErrNoContact, n.cfg.Seeds, n.cfg.Domain, context.Cause(ctx))
			}
			return fmt.Errorf("cluster: the view is still filling: %w", context.Cause(ctx))
		case <-n.done:
			return ErrClosed
		case <-t.C:
		}
	}
	return nil
}
