package trust

import (
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Roles a certificate can grant. They are the strings of package role.
const (
	RoleWorker   = "worker"
	RoleManager  = "manager"
	RoleObserver = "observer"
)

// Identity is what a certificate says of a node.
type Identity struct {
	Domain    string // the SPIFFE trust domain: the cluster domain
	SubDomain string // for example "worker" or "mgt"
	Role      string // RoleWorker, RoleManager or RoleObserver
	Name      string // the node name
}

// ID returns the identity as a SPIFFE ID,
// spiffe://<domain>/<sub-domain>/<role>/<name>.
func (id Identity) ID() (spiffeid.ID, error) {
	if err := id.validate(); err != nil {
		return spiffeid.ID{}, err
	}
	td, err := spiffeid.TrustDomainFromString(id.Domain)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("trust: domain %q is not a SPIFFE trust domain (lower-case letters, digits, '.', '-', '_'): %w", id.Domain, err)
	}
	sid, err := spiffeid.FromSegments(td, id.SubDomain, id.Role, id.Name)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("trust: identity %s: %w", id, err)
	}
	return sid, nil
}

// String returns the SPIFFE URI form, even for an invalid identity.
func (id Identity) String() string {
	return "spiffe://" + id.Domain + "/" + id.SubDomain + "/" + id.Role + "/" + id.Name
}

func (id Identity) validate() error {
	switch {
	case id.Domain == "":
		return fmt.Errorf("trust: identity %s: empty domain", id)
	case id.SubDomain == "":
		return fmt.Errorf("trust: identity %s: empty sub-domain", id)
	case id.Name == "":
		return fmt.Errorf("trust: identity %s: empty node name", id)
	}
	switch id.Role {
	case RoleWorker, RoleManager, RoleObserver:
		return nil
	}
	return fmt.Errorf("trust: identity %s: unknown role %q (want worker, manager or observer)", id, id.Role)
}

// FromID reads an Identity from a SPIFFE ID. It fails, naming what is
// wrong, unless the path is exactly /<sub-domain>/<role>/<name> with a
// known role.
func FromID(sid spiffeid.ID) (Identity, error) {
	path := strings.TrimPrefix(sid.Path(), "/")
	parts := strings.Split(path, "/")
	if len(parts) != 3 {
		return Identity{}, fmt.Errorf("trust: SPIFFE ID %s has %d path segments, want 3 (/<sub-domain>/<role>/<node-name>)", sid, len(parts))
	}
	id := Identity{Domain: sid.TrustDomain().Name(), SubDomain: parts[0], Role: parts[1], Name: parts[2]}
	if err := id.validate(); err != nil {
		return Identity{}, err
	}
	return id, nil
}

// ParseIdentity parses spiffe://<domain>/<sub-domain>/<role>/<name>.
func ParseIdentity(uri string) (Identity, error) {
	sid, err := spiffeid.FromString(uri)
	if err != nil {
		return Identity{}, fmt.Errorf("trust: %q is not a SPIFFE ID: %w", uri, err)
	}
	return FromID(sid)
}
