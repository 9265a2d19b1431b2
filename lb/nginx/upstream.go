package nginx

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/role"
)

// Server is one member of an upstream.
type Server struct {
	// Name is the member's node name. Templates may print it in a comment.
	Name string
	// Addr is the member's endpoint, "host:port".
	Addr string
	// Weight is the member's weight, at least 1.
	Weight int
	// Backup marks a stand-by manager in Active/Passive mode: Nginx sends
	// it requests only when no primary server is available.
	Backup bool
}

// Upstream is one rendered upstream: the routable members of a sub-domain.
type Upstream struct {
	// Name is the upstream's name in the Nginx configuration.
	Name string
	// SubDomain is the sub-domain it was built from.
	SubDomain string
	// Zone is the size of the shared memory zone ("64k"), "" for none.
	Zone string
	// Servers are the routable members, sorted by name.
	Servers []Server
}

// HasPrimary reports whether u has a server that is not a backup. Open-source
// Nginx refuses an upstream without one; the default template then renders
// a placeholder "server 127.0.0.1:1 down;".
func (u Upstream) HasPrimary() bool {
	for _, s := range u.Servers {
		if !s.Backup {
			return true
		}
	}
	return false
}

func (u Upstream) clone() Upstream {
	u.Servers = slices.Clone(u.Servers)
	return u
}

func equalUpstreams(a, b []Upstream) bool {
	return slices.EqualFunc(a, b, func(x, y Upstream) bool {
		return x.Name == y.Name && x.SubDomain == y.SubDomain && x.Zone == y.Zone && slices.Equal(x.Servers, y.Servers)
	})
}

func cloneUpstreams(ups []Upstream) []Upstream {
	out := make([]Upstream, len(ups))
	for i, u := range ups {
		out[i] = u.clone()
	}
	return out
}

// validName reports whether s is a safe Nginx identifier.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// validZone reports whether s is an Nginx size such as "64k" or "1m".
func validZone(s string) bool {
	if s == "" {
		return true
	}
	n := strings.TrimRight(s, "kKmM")
	if len(s)-len(n) > 1 {
		return false
	}
	v, err := strconv.Atoi(n)
	return err == nil && v > 0
}

// safeName reports whether a member name can be printed in a configuration
// file (the default template puts it in a comment): Join refuses white
// space, but names come from other members' gossip.
func safeName(s string) bool {
	for _, r := range s {
		if r < 0x21 || r == 0x7f || strings.ContainsRune(";{}#\"'\\$", r) {
			return false
		}
	}
	return s != ""
}

// errBadEndpoint is wrapped by checkAddr.
var errBadEndpoint = errors.New("nginx: bad endpoint")

// checkAddr accepts a "host:port" whose host is an IP address or a DNS name.
// Endpoints come from other members' tags and end up in a configuration
// file, so anything that could smuggle Nginx syntax (spaces, ';', '{', '#',
// quotes, '$') is refused.
func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w %q: %v", errBadEndpoint, addr, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%w %q: port must be 1 to 65535", errBadEndpoint, addr)
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	if host == "" || len(host) > 253 {
		return fmt.Errorf("%w %q: empty or long host", errBadEndpoint, addr)
	}
	for _, r := range host {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return fmt.Errorf("%w %q: host must be an IP address or a DNS name", errBadEndpoint, addr)
		}
	}
	return nil
}

// builder turns views into upstreams.
type builder struct {
	specs    []UpstreamSpec
	endpoint string
	weight   string
	warn     func(msg string, args ...any)
}

// build returns one upstream per spec from v.
func (b *builder) build(v *cluster.View) []Upstream {
	members := v.Members()
	out := make([]Upstream, 0, len(b.specs))
	for _, sp := range b.specs {
		u := Upstream{Name: sp.Name, SubDomain: sp.SubDomain, Zone: sp.Zone, Servers: []Server{}}
		active, hasActive := v.Active(sp.SubDomain)
		for _, m := range members {
			if m.SubDomain != sp.SubDomain || !m.Routable() {
				continue
			}
			if !safeName(m.Name) {
				b.warn("nginx: member name has characters unsafe in a configuration file, left out of the upstream",
					"member", m.Name, "upstream", sp.Name)
				continue
			}
			addr, ok := m.Endpoint(b.endpoint)
			if !ok {
				b.warn("nginx: member has no endpoint, left out of the upstream",
					"member", m.Name, "endpoint", b.endpoint, "upstream", sp.Name)
				continue
			}
			if err := checkAddr(addr); err != nil {
				b.warn("nginx: member left out of the upstream", "member", m.Name, "upstream", sp.Name, "err", err)
				continue
			}
			s := Server{Name: m.Name, Addr: addr, Weight: 1}
			if w, ok := m.Properties[b.weight]; ok {
				n, err := strconv.Atoi(w)
				if err != nil || n < 1 || n > 1000 {
					b.warn("nginx: bad weight property, using 1", "member", m.Name, "property", b.weight, "value", w)
				} else {
					s.Weight = n
				}
			}
			if m.Role == role.Manager && m.ManagerMode == cluster.ActivePassive {
				s.Backup = !hasActive || active.Name != m.Name
			}
			u.Servers = append(u.Servers, s)
		}
		out = append(out, u)
	}
	return out
}
