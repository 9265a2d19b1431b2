package cluster

import (
	"strconv"
	"strings"

	"github.com/carbonkit/carbon/internal/tags"
)

// RevisionID names a point in a domain's line of artifact revisions: the
// election epoch of the manager that published it and its sequence number
// (package depsync's Revision.Epoch and Revision.Seq). Revisions are
// ordered by (Epoch, Seq); the zero RevisionID is no revision.
type RevisionID struct {
	Epoch, Seq uint64
}

// String returns "<epoch>-<seq>", as depsync's Revision.ID.
func (r RevisionID) String() string {
	return strconv.FormatUint(r.Epoch, 10) + "-" + strconv.FormatUint(r.Seq, 10)
}

// Compare returns -1, 0 or +1 as r comes before, is, or comes after o.
func (r RevisionID) Compare(o RevisionID) int {
	switch {
	case r.Epoch != o.Epoch:
		if r.Epoch < o.Epoch {
			return -1
		}
		return 1
	case r.Seq < o.Seq:
		return -1
	case r.Seq > o.Seq:
		return 1
	}
	return 0
}

// IsZero reports whether r is no revision.
func (r RevisionID) IsZero() bool { return r == RevisionID{} }

// SetRevision reports the artifact revision this node runs to its domain:
// every member sees it as [Member.Revision] (a tag, so it travels with
// gossip and costs nothing to read), and the status page flags members
// whose revision lags their active manager's. Package depsync calls it on
// start and after every switch; an application with a synchronizer of its
// own calls it the same way. A node that never calls it reports none.
func (n *Node) SetRevision(r RevisionID) {
	n.mu.Lock()
	if n.revision != nil && *n.revision == r {
		n.mu.Unlock()
		return
	}
	n.revision = &r
	n.mu.Unlock()
	n.pushTags()
	n.poke()
}

// revisionTag adds the reported revision, if any, to t. n.mu is held.
func (n *Node) revisionTag(t map[string]string) {
	if n.revision != nil {
		t[tags.KeyRevision] = tags.EncodeEpoch(n.revision.Epoch) + "-" + tags.EncodeEpoch(n.revision.Seq)
	}
}

// selfRevision is the reported revision for the self member. n.mu is held.
func (n *Node) selfRevision() (RevisionID, bool) {
	if n.revision == nil {
		return RevisionID{}, false
	}
	return *n.revision, true
}

// decodeRevision parses a member's revision tag; ok is false when it has
// none or it is malformed (a malformed tag reports no revision rather than
// a wrong one).
func decodeRevision(s string) (RevisionID, bool) {
	if s == "" {
		return RevisionID{}, false
	}
	a, b, found := strings.Cut(s, "-")
	if !found {
		return RevisionID{}, false
	}
	e, err1 := tags.DecodeEpoch(a)
	q, err2 := tags.DecodeEpoch(b)
	if err1 != nil || err2 != nil || a == "" || b == "" {
		return RevisionID{}, false
	}
	return RevisionID{Epoch: e, Seq: q}, true
}
