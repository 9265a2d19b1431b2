package role

import (
	"errors"
	"fmt"
	"strings"
)

// Role is the part a node plays in a domain.
type Role string

const (
	// Worker serves client requests and is read-only: it may load
	// artifacts and read configuration, never change them.
	Worker Role = "worker"
	// Manager deploys and configures artifacts and carries the
	// management console. In Active/Passive mode only the active manager
	// of a sub-domain is writable.
	Manager Role = "manager"
	// None is the role of an observer: a process that joins a domain to
	// see it (a gateway, a load balancer, a CLI) but never serves it.
	None Role = ""
)

// ErrUnknownRole is returned by [Parse] for a string that names no role.
var ErrUnknownRole = errors.New("role: unknown role")

// Parse returns the Role named by s ("worker" or "manager", case-insensitive,
// surrounding spaces ignored). Anything else is an error wrapping
// [ErrUnknownRole] that quotes s.
func Parse(s string) (Role, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "worker":
		return Worker, nil
	case "manager":
		return Manager, nil
	}
	return None, fmt.Errorf("%w %q (want %q or %q)", ErrUnknownRole, s, Worker, Manager)
}

// Valid reports whether r is [Worker] or [Manager].
func (r Role) Valid() bool { return r == Worker || r == Manager }

// String returns the role's name, or "observer" for [None].
func (r Role) String() string {
	if r == None {
		return "observer"
	}
	return string(r)
}

// State is what the [Guard] reads on every call: the node's role and
// whether it may write right now. Implementations must be safe for
// concurrent use and cheap: the Guard calls Writable on every request.
// *cluster.Node implements State; [Static] provides one for single-node
// use and tests.
type State interface {
	Role() Role
	Writable() bool
}

// DomainReporter is optionally implemented by a [State] whose node belongs
// to a domain; the Guard names the domain in its rejections.
type DomainReporter interface {
	Domain() string
}

// ActiveReporter is optionally implemented by a [State] that knows the
// active manager of its domain. ActiveEndpoint returns the address of the
// named endpoint ("grpc", "http") of the active manager. The Guard discloses
// it only when configured to, since managers may sit behind an internal
// firewall.
type ActiveReporter interface {
	ActiveEndpoint(name string) (addr string, ok bool)
}

// EpochReporter is optionally implemented by a [State] that takes part in
// an Active/Passive election. Epoch is the fencing token under which the
// node is writable (0 when it is not the active manager).
type EpochReporter interface {
	Epoch() uint64
}

type static Role

// Static returns a State with a fixed role: a [Manager] is always writable,
// anything else never is.
func Static(r Role) State { return static(r) }

func (s static) Role() Role     { return Role(s) }
func (s static) Writable() bool { return Role(s) == Manager }
