package cluster

import (
	"maps"
	"net"
	"sort"
	"strconv"

	"github.com/hashicorp/serf/serf"

	"github.com/carbonkit/carbon/internal/tags"
	"github.com/carbonkit/carbon/role"
)

// Status is serf's view of a member's liveness.
type Status int

const (
	// StatusAlive: the member answers probes.
	StatusAlive Status = iota
	// StatusLeaving: the member announced a graceful leave.
	StatusLeaving
	// StatusLeft: the member left gracefully.
	StatusLeft
	// StatusFailed: the member stopped answering and was declared dead.
	StatusFailed
)

// String returns "alive", "leaving", "left" or "failed".
func (s Status) String() string {
	switch s {
	case StatusLeaving:
		return "leaving"
	case StatusLeft:
		return "left"
	case StatusFailed:
		return "failed"
	}
	return "alive"
}

// ServingState is what a member says of its own readiness, beside serf's
// liveness. Balancers send new work only to serving members.
type ServingState int

const (
	// Starting: joined, not ready for traffic yet.
	Starting ServingState = iota
	// Serving: ready for traffic.
	Serving
	// Draining: finishing in-flight work before leaving; takes no new work.
	Draining
)

// String returns "starting", "serving" or "draining".
func (s ServingState) String() string {
	switch s {
	case Serving:
		return "serving"
	case Draining:
		return "draining"
	}
	return "starting"
}

// Member is a snapshot of one member of a domain. Its maps are shared with
// the view it came from and must not be modified.
type Member struct {
	// Name is the member's unique node name.
	Name string
	// Domain and SubDomain place the member.
	Domain, SubDomain string
	// Role is role.Worker, role.Manager, or role.None for an observer
	// (role.Manager for one that acts for the managers).
	Role role.Role
	// Observer members see the domain but are never routed to or elected.
	Observer bool
	// ManagerMode of a manager.
	ManagerMode ManagerMode
	// Addr is the member's gossip address, "host:port".
	Addr string
	// Endpoints are the member's service addresses by name.
	Endpoints map[string]string
	// Properties are the member's free-form key/values.
	Properties map[string]string
	// Status is the member's liveness.
	Status Status
	// State is the member's serving state.
	State ServingState
	// Claim is the epoch of the member's claim to be the active manager of
	// its sub-domain, 0 if it does not claim. See [View.Active] for who
	// actually is active. With a trust root, a claim this node could not
	// verify (no valid signature by the member's proven key) reads 0.
	Claim uint64
	// Trust says whether the member proved a certificate for its role,
	// sub-domain and name: TrustOff when this node has no trust root.
	Trust TrustState

	// As the member's tags say, before this node's checks: the claim, the
	// signed claim and the secret that opens it, and the identity
	// endpoint's port (trust on). refused: this node's proof of the
	// member's identity failed, or its certificate expired.
	rawClaim  uint64
	claimSig  string
	claimKey  string
	identPort int
	refused   bool
	// Revision is the artifact revision the member runs, as it reports it
	// ([Node.SetRevision]; package depsync does); meaningful only when
	// HasRevision is set.
	Revision    RevisionID
	HasRevision bool
}

// Endpoint returns the address of the member's named endpoint.
func (m Member) Endpoint(name string) (string, bool) {
	a, ok := m.Endpoints[name]
	return a, ok
}

// Routable reports whether balancers may send new work to m: alive,
// serving, and not an observer.
func (m Member) Routable() bool {
	return m.Status == StatusAlive && m.State == Serving && !m.Observer && m.Trusted()
}

// Trusted reports whether m's role may be believed: it proved its
// certificate, or this node has no trust root (roles are self-asserted).
func (m Member) Trusted() bool { return m.Trust != TrustUnverified }

// equal reports whether two snapshots of a member say the same.
func (m *Member) equal(o *Member) bool {
	return m.Name == o.Name && m.Domain == o.Domain && m.SubDomain == o.SubDomain && m.Role == o.Role &&
		m.Observer == o.Observer && m.ManagerMode == o.ManagerMode && m.Addr == o.Addr &&
		m.Status == o.Status && m.State == o.State && m.Claim == o.Claim && m.Trust == o.Trust &&
		m.rawClaim == o.rawClaim && m.claimSig == o.claimSig && m.claimKey == o.claimKey &&
		m.identPort == o.identPort && m.refused == o.refused &&
		m.Revision == o.Revision && m.HasRevision == o.HasRevision &&
		maps.Equal(m.Endpoints, o.Endpoints) && maps.Equal(m.Properties, o.Properties)
}

// memberFromSerf decodes a serf member; ok is false for a member whose
// tags are not ours (it is left out of views).
func memberFromSerf(sm *serf.Member) (Member, bool) {
	t := sm.Tags
	m := Member{
		Name:      sm.Name,
		Domain:    t[tags.KeyDomain],
		SubDomain: t[tags.KeySubDomain],
		Addr:      net.JoinHostPort(sm.Addr.String(), strconv.Itoa(int(sm.Port))),
	}
	if m.Domain == "" {
		return m, false
	}
	switch t[tags.KeyRole] {
	case tags.RoleWorker:
		m.Role = role.Worker
	case tags.RoleManager:
		m.Role = role.Manager
	case tags.RoleManagerActive:
		m.Role, m.ManagerMode = role.Manager, ActiveActive
	case tags.RoleObserver:
		m.Observer = true
	case tags.RoleObserverMgr:
		m.Observer, m.Role = true, role.Manager
	default:
		return m, false
	}
	switch t[tags.KeyState] {
	case tags.StateServing:
		m.State = Serving
	case tags.StateDraining:
		m.State = Draining
	}
	switch sm.Status {
	case serf.StatusLeaving:
		m.Status = StatusLeaving
	case serf.StatusLeft:
		m.Status = StatusLeft
	case serf.StatusFailed:
		m.Status = StatusFailed
	}
	host := sm.Addr.String()
	m.Endpoints, _ = tags.DecodeMap(t[tags.KeyEndpoints], host)
	m.Properties, _ = tags.DecodeMap(t[tags.KeyProps], "")
	m.Claim, _ = tags.DecodeEpoch(t[tags.KeyClaim])
	m.rawClaim, m.claimSig, m.claimKey = m.Claim, t[tags.KeyClaimSig], t[tags.KeyClaimKey]
	if p, err := strconv.Atoi(t[tags.KeyIdentity]); err == nil && p > 0 && p < 65536 {
		m.identPort = p
	}
	m.Revision, m.HasRevision = decodeRevision(t[tags.KeyRevision])
	return m, true
}

// View is an immutable, versioned snapshot of a domain as one node sees it.
// Views are safe to share between goroutines.
type View struct {
	version uint64
	self    string
	// members are sorted by name. They are shared between the views of a
	// node (a member that did not change is the same pointer in the next
	// view), so a new view copies pointers, not members; never modified.
	members []*Member
	actives map[string]Member
	epochs  map[string]uint64
}

// Version increases with every change the node publishes.
func (v *View) Version() uint64 { return v.version }

// Members returns the members of the view sorted by name, the node itself
// included, failed and left members too (check [Member.Status]). The slice
// is the caller's.
func (v *View) Members() []Member {
	out := make([]Member, len(v.members))
	for i, m := range v.members {
		out[i] = *m
	}
	return out
}

// Len is the number of members in the view.
func (v *View) Len() int { return len(v.members) }

// Member returns the named member.
func (v *View) Member(name string) (Member, bool) {
	i := sort.Search(len(v.members), func(i int) bool { return v.members[i].Name >= name })
	if i < len(v.members) && v.members[i].Name == name {
		return *v.members[i], true
	}
	return Member{}, false
}

// Self returns the node's own member.
func (v *View) Self() Member {
	m, _ := v.Member(v.self)
	return m
}

// Active returns the active manager of a sub-domain: in Active/Passive
// mode, the alive, non-draining manager with the highest claim epoch; in
// Active/Active mode, the alive serving manager with the lowest name (any
// live manager is writable then). ok is false when the sub-domain has no
// active manager (none alive, an election under way, or no quorum).
func (v *View) Active(subDomain string) (Member, bool) {
	m, ok := v.actives[subDomain]
	return m, ok
}

// Epoch returns the epoch of the active manager of a sub-domain (0 if
// none, and always 0 in Active/Active mode).
func (v *View) Epoch(subDomain string) uint64 { return v.epochs[subDomain] }

// Alive returns the alive members of a sub-domain ("" for all), observers
// excluded.
func (v *View) Alive(subDomain string) []Member {
	var out []Member
	for _, m := range v.members {
		if m.Status == StatusAlive && !m.Observer && (subDomain == "" || m.SubDomain == subDomain) {
			out = append(out, *m)
		}
	}
	return out
}
