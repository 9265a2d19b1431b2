package cluster

import (
	"context"
	"net"
)

// Resolver looks up the addresses of a seed's host name. *net.Resolver
// implements it, so a Config can name a particular DNS server
// (net.Resolver with PreferGo and Dial); a program that discovers its
// peers some other way (the Kubernetes API's EndpointSlices, a service
// registry) implements it to hand Join their current addresses.
//
// LookupHost is called from one goroutine of the Node at a time: at Join,
// on every retry while the node sees no other alive member, and about
// every 10 s while it does (1 s on ProfileLocal, 30 s on ProfileWAN; see
// Config.Seeds). It should return IP addresses; other entries are
// skipped. It must honour ctx, which bounds each lookup (5 s).
type Resolver interface {
	LookupHost(ctx context.Context, host string) (addrs []string, err error)
}

var _ Resolver = (*net.Resolver)(nil)

// resolver is the Config's Resolver, or the system's.
func (n *Node) resolver() Resolver {
	if n.cfg.Resolver != nil {
		return n.cfg.Resolver
	}
	return net.DefaultResolver
}

// lookupSeed returns the IP addresses host resolves to, each spelled as
// net.IP.String spells it (a Member's Addr is compared with them).
func (n *Node) lookupSeed(ctx context.Context, host string) ([]net.IP, error) {
	addrs, err := n.resolver().LookupHost(ctx, host)
	if err != nil {
		return nil, err
	}
	ips := make([]net.IP, 0, len(addrs))
	for _, a := range addrs {
		if ip := net.ParseIP(a); ip != nil {
			ips = append(ips, ip)
		} else {
			n.log.Debug("seed resolver returned a non-IP address; skipped", "host", host, "addr", a)
		}
	}
	return ips, nil
}
