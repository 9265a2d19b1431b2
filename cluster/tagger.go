package cluster

import (
	"reflect"
	"strconv"
	"time"

	"github.com/carbonkit/carbon/internal/tags"
)

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
	}
	n.signedClaimTagsLocked(t)
	if n.ver != nil {
		t[tags.KeyIdentity] = strconv.Itoa(n.ver.port())
	}
	n.revisionTag(t)
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
