package cluster

// Whether this node may write now. The rule has two halves that change at
// different times, and this file holds both:
//
//   - elected, decided by the loop at each view (electedWriter): the node
//     is a manager that is not draining, its side meets Config.Quorum, and
//     it is the active manager of its sub-domain (any such manager in
//     Active/Active mode). Drain and Close clear it at once, before the
//     loop runs again, so that a node stops writing before anyone else can
//     be elected.
//   - the write lease (lease.go), for an Active/Passive manager only: it
//     heard from its domain recently enough that no other manager can have
//     been elected.
//
// decideWritable combines them; Writable and Epoch call it.

// electedWriter reports whether self, in a view holding list with the
// given actives, is the writer of its sub-domain as far as the view shows.
func electedWriter(list []*Member, self *Member, actives map[string]Member, quorum int) bool {
	if !isManager(self) || self.State == Draining || !quorumMet(list, self, quorum) {
		return false
	}
	if self.ManagerMode == ActiveActive {
		return true
	}
	a, ok := actives[self.SubDomain]
	return ok && a.Name == self.Name
}

// decideWritable is the whole rule: elected by the last view and, with a
// lease, holding it now. It reads one atomic and the monotonic clock and
// allocates nothing.
func (n *Node) decideWritable() bool {
	if !n.elected.Load() {
		return false
	}
	return n.lease == nil || n.lease.held()
}

// Writable reports whether this node may write now: an active manager (any
// live manager in Active/Active mode) that is not draining and, in
// Active/Passive mode, holds its write lease (see [Profile]: it heard from
// its domain recently enough that no other manager can have been elected).
// Workers and observers never are. It implements role.State; it reads two
// atomics and the monotonic clock, and allocates nothing.
func (n *Node) Writable() bool { return n.decideWritable() }

// Epoch is the fencing token under which this node is writable, 0 if it is
// not the active manager. It implements role.EpochReporter.
func (n *Node) Epoch() uint64 {
	if !n.decideWritable() {
		return 0
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.claim
}
