package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/memberlist"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/carbonkit/carbon/internal/tags"
	"github.com/carbonkit/carbon/role"
	"github.com/carbonkit/carbon/trust"
)

// DefaultPort is the gossip port used when BindAddr or a seed names no port.
const DefaultPort = 7946

// Default sub-domains, as in the Carbon clustering guide.
const (
	SubDomainWorker  = "worker"
	SubDomainManager = "mgt"
)

// ManagerMode says how many managers of a sub-domain may write at once.
type ManagerMode int

const (
	// ActivePassive (the default): exactly one manager of a sub-domain is
	// active and writable; the others are read-only stand-bys.
	ActivePassive ManagerMode = iota
	// ActiveActive: every live manager is writable. Allowed, but not
	// generally recommended: concurrent writers must reconcile their
	// changes themselves.
	ActiveActive
)

// String returns "active-passive" or "active-active".
func (m ManagerMode) String() string {
	if m == ActiveActive {
		return "active-active"
	}
	return "active-passive"
}

// Profile is a set of gossip timings.
type Profile int

const (
	// ProfileLAN is serf's default LAN timing (failure detection in a few
	// seconds). The default. Write lease 4 s (SuspicionMult 4 × probe
	// interval 1 s); no peer declares the active failed, so no stand-by
	// claims, sooner than 4.5 s (probe timeout 500 ms + 4 s) after it last
	// answered.
	ProfileLAN Profile = iota
	// ProfileLocal is a fast profile for one host or a fast local network
	// and for tests: on loopback with 10 nodes a crashed node is marked
	// failed by all within about a second. It is sized for tens of nodes:
	// its 150 ms probe timeout assumes the CPU keeps up; with hundreds of
	// nodes on a saturated CPU probes time out, each suspicion adds
	// gossip, and the cluster may not converge, so use ProfileLAN there
	// (clustertest's BenchmarkScale measures both). The same clusters
	// converge on the in-memory network inside a synctest bubble, where
	// probes do not time out for want of CPU. Write lease 400 ms
	// (SuspicionMult 2 × probe interval 200 ms); no stand-by claims sooner
	// than 550 ms (probe timeout 150 ms + 400 ms) after the active last
	// answered.
	ProfileLocal
	// ProfileWAN is memberlist's WAN timing, for members across data centres.
	// Write lease 30 s (SuspicionMult 6 × probe interval 5 s); no stand-by
	// claims sooner than 33 s (probe timeout 3 s + 30 s) after the active
	// last answered.
	ProfileWAN
)

// String returns "lan", "local" or "wan".
func (p Profile) String() string {
	switch p {
	case ProfileLocal:
		return "local"
	case ProfileWAN:
		return "wan"
	}
	return "lan"
}

// ParseProfile parses "lan", "local" or "wan".
func ParseProfile(s string) (Profile, error) {
	switch strings.ToLower(s) {
	case "", "lan":
		return ProfileLAN, nil
	case "local", "fast":
		return ProfileLocal, nil
	case "wan":
		return ProfileWAN, nil
	}
	return 0, fmt.Errorf("cluster: unknown timing profile %q (want lan, local or wan)", s)
}

// MaxGossipPacket caps the packet size a Config.Transport declares. With
// every ping and ack, memberlist sends what waits to be gossiped in one
// compound message whose part count is a single byte: in bigger packets
// more than 255 small messages (serf's join intents are about 25 bytes)
// fit, the count wraps and the receiver misreads the packet (pings that
// fail to decode, so failed probes, and garbage message types). 4 KiB holds at
// most 227 parts of the smallest message serf or memberlist gossips
// (about 16 bytes, plus 2 for its length).
const MaxGossipPacket = 4096

// Config configures a [Node]. It is passed by value to [Join], which copies
// what it keeps: changing a Config after Join has no effect. The zero value
// of every field means the default documented on it; [Join] validates the
// whole Config before anything starts, and every error names the field.
type Config struct {
	// Domain is the cluster: one gossip pool. Required: 1 to 64 characters
	// of letters, digits, '.', '-' and '_' (e.g. "wso2.as.domain"). Nodes of
	// another domain are never merged.
	Domain string
	// SubDomain is the group within the domain. Default: "worker" for
	// workers, "mgt" for managers, "" for observers.
	SubDomain string
	// Role is role.Worker or role.Manager. Required unless Observer is set,
	// in which case it is empty, or role.Manager for an observer that acts
	// for the managers (an operator's tool: see [Node.DrainMember]).
	Role role.Role
	// Observer joins the domain to see it but not to serve: the node is
	// never routed to and never elected, whatever its Role.
	Observer bool

	// NodeName is the member's unique name. Default: a random UUID.
	NodeName string
	// BindAddr is the "host:port" to listen on for gossip (UDP and TCP).
	// Default "0.0.0.0:7946"; port 0 picks a free port.
	BindAddr string
	// AdvertiseAddr is the "host:port" peers use to reach this node.
	// Default: derived from BindAddr by memberlist.
	AdvertiseAddr string
	// Seeds are well-known members (Carbon's WKA): "host:port", or "host"
	// for the default port. A DNS name is resolved to all its A/AAAA records
	// on every attempt. A node whose seeds are not up yet comes up alone and
	// keeps retrying with backoff until it has contact. While it has
	// contact it looks the names up again about every 10 s (LAN timings)
	// and joins addresses no member holds, so that groups formed apart
	// (pods of a headless Service started at once) merge.
	Seeds []string
	// Resolver looks up the seeds' host names. Default: net.DefaultResolver.
	Resolver Resolver

	// Endpoints are the member's service addresses by name: "grpc",
	// "http", ... Balancers route to them.
	Endpoints map[string]string
	// Properties are small free-form key/values (e.g. "weight", "zone").
	// Endpoints and Properties together must fit in memberlist's 512-byte
	// metadata; bigger data belongs in a cluster message or an endpoint.
	Properties map[string]string

	// ManagerMode applies to managers: ActivePassive (default) or ActiveActive.
	ManagerMode ManagerMode
	// Quorum, for managers in Active/Passive mode, is the expected number
	// of managers in the sub-domain. When set, a side of a partition that
	// sees fewer than a majority (Quorum/2+1) of them has no active manager
	// and is read-only, instead of electing its own. 0 means no quorum.
	Quorum int

	// Key enables gossip encryption (AES-GCM) with a 16, 24 or 32-byte key.
	// Nodes without the key cannot join. Rotate with [Node.InstallKey],
	// [Node.UseKey] and [Node.RemoveKey].
	Key []byte

	// Profile selects gossip timings. Default ProfileLAN.
	Profile Profile
	// SnapshotPath, when set, is a file where the node records the peers
	// it knows, so that it rejoins them after a restart.
	SnapshotPath string
	// DeferServing keeps the node in the starting state after Join until
	// [Node.Ready] is called. By default Join leaves it serving.
	DeferServing bool
	// Bootstrap lets a manager with Seeds that reaches none of them elect
	// itself alone, after ElectionDelay. Without it such a manager stays a
	// read-only stand-by until it has contact with its domain: a typo in
	// Seeds, or a seed host that is down, must not make a second writer
	// (Consul's bootstrap_expect plays the same part). Set it on the one
	// manager that starts a new domain, or to recover when every other
	// manager is gone. A manager without Seeds is alone by design and
	// claims as soon as it starts.
	Bootstrap bool
	// Trust is the domain's trust root and this node's certificate (see
	// package trust). With it, a member counts as a worker or a manager only
	// once it has proven a certificate naming that role, sub-domain and
	// name; the active manager's claim must be signed by its key; and the
	// node serves proofs of its own identity on IdentityAddr. Nil (the
	// default) means roles are self-asserted: anyone holding the gossip key
	// can become the writer, and Join warns so. Production domains set it.
	// Domain, SubDomain and Role must match the certificate (an observer's
	// certificate names the observer role, or manager for an observer with
	// Role manager, which may then drain and remove members), NodeName
	// defaults to the certificate's name and must match it when set. A
	// Source loaded from files is reloaded twice a second: rotate the CA by
	// adding the new CA to every node's CA file first, then replace the
	// node certificates, then drop the old CA.
	Trust *trust.Source
	// IdentityAddr is where the node serves proofs of its identity when
	// Trust is set: "host:port", port 0 for any free port. Peers reach it
	// at the node's advertised host and this port. Default: BindAddr's
	// host, port 0.
	IdentityAddr string
	// ElectionDelay, for managers with Seeds and Bootstrap, is how long a
	// manager that cannot reach any seed waits alone before it elects
	// itself. It keeps a restarting manager from claiming before it has
	// learned of the active one. Default: 5 s (1 s with ProfileLocal).
	ElectionDelay time.Duration

	// Transport replaces the UDP/TCP sockets memberlist opens on BindAddr,
	// for example with an in-memory network (cluster/clustertest). nil
	// means real sockets. A transport with a method PacketSize() int that
	// returns more than 0 carries packets of that many bytes: memberlist
	// fills its gossip packets up to it, or up to [MaxGossipPacket] if
	// that is less (its UDPBufferSize), instead of the 1,400 bytes that
	// fit a UDP datagram on any network. The in-memory network has no MTU
	// and says 64 KiB.
	Transport memberlist.Transport

	// Logger receives the Node's logs, serf's and memberlist's included.
	// Default: slog.Default().
	Logger *slog.Logger
	// MeterProvider and TracerProvider default to the global OpenTelemetry
	// providers (no-ops unless the application installs an SDK).
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
}

// ErrInvalidConfig is wrapped by every error [Join] returns for a bad Config.
var ErrInvalidConfig = errors.New("cluster: invalid config")

func configError(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
}

var domainRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// normalize validates c and fills in defaults. It returns a copy.
func (c Config) normalize() (Config, error) {
	if c.Domain == "" {
		return c, configError("Domain", "must not be empty")
	}
	if !domainRE.MatchString(c.Domain) {
		return c, configError("Domain", "%q: want 1 to 64 letters, digits, '.', '-' or '_'", c.Domain)
	}
	if c.Observer {
		if c.Role != role.None && c.Role != role.Manager {
			return c, configError("Role", "an observer has no role, or role.Manager to act for the managers (Node.DrainMember, Node.LeaveMember), got %q", c.Role)
		}
	} else if !c.Role.Valid() {
		return c, configError("Role", "unknown role %q (want %q or %q)", string(c.Role), role.Worker, role.Manager)
	}
	if c.SubDomain == "" {
		switch {
		case c.Observer: // no sub-domain, whatever its role
		case c.Role == role.Worker:
			c.SubDomain = SubDomainWorker
		case c.Role == role.Manager:
			c.SubDomain = SubDomainManager
		}
	} else if !domainRE.MatchString(c.SubDomain) {
		return c, configError("SubDomain", "%q: want 1 to 64 letters, digits, '.', '-' or '_'", c.SubDomain)
	}
	if err := c.checkTrust(); err != nil {
		return c, err
	}
	if c.NodeName == "" {
		c.NodeName = uuid.NewString()
	} else if len(c.NodeName) > 128 || strings.ContainsAny(c.NodeName, " \t\n\r") {
		return c, configError("NodeName", "%q: want at most 128 characters and no white space", c.NodeName)
	}
	if c.BindAddr == "" {
		c.BindAddr = net.JoinHostPort("0.0.0.0", strconv.Itoa(DefaultPort))
	}
	if _, _, err := splitAddr(c.BindAddr, DefaultPort); err != nil {
		return c, configError("BindAddr", "%v", err)
	}
	if c.AdvertiseAddr != "" {
		host, _, err := splitAddr(c.AdvertiseAddr, DefaultPort)
		if err != nil {
			return c, configError("AdvertiseAddr", "%v", err)
		}
		if net.ParseIP(host) == nil {
			return c, configError("AdvertiseAddr", "%q: the host must be an IP address", c.AdvertiseAddr)
		}
	}
	c.Seeds = append([]string(nil), c.Seeds...)
	for i, s := range c.Seeds {
		if _, _, err := splitAddr(s, DefaultPort); err != nil {
			return c, configError(fmt.Sprintf("Seeds[%d]", i), "%v", err)
		}
	}
	for name, addr := range c.Endpoints {
		if name == "" {
			return c, configError("Endpoints", "an endpoint has an empty name")
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return c, configError("Endpoints["+name+"]", "%q is not host:port: %v", addr, err)
		}
	}
	c.Endpoints = cloneMap(c.Endpoints)
	c.Properties = cloneMap(c.Properties)
	if c.ManagerMode != ActivePassive && c.ManagerMode != ActiveActive {
		return c, configError("ManagerMode", "unknown mode %d", int(c.ManagerMode))
	}
	if c.Quorum < 0 {
		return c, configError("Quorum", "must not be negative, got %d", c.Quorum)
	}
	switch len(c.Key) {
	case 0, 16, 24, 32:
		c.Key = append([]byte(nil), c.Key...)
	default:
		return c, configError("Key", "got %d bytes, want 16, 24 or 32", len(c.Key))
	}
	if c.Profile < ProfileLAN || c.Profile > ProfileWAN {
		return c, configError("Profile", "unknown profile %d", int(c.Profile))
	}
	if c.ElectionDelay < 0 {
		return c, configError("ElectionDelay", "must not be negative, got %v", c.ElectionDelay)
	}
	if c.ElectionDelay == 0 {
		c.ElectionDelay = 5 * time.Second
		if c.Profile == ProfileLocal {
			c.ElectionDelay = time.Second
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// splitAddr parses "host:port" or "host" (default port). The host must not
// be empty; the port must be 0..65535.
func splitAddr(s string, defPort int) (string, int, error) {
	if s == "" {
		return "", 0, errors.New("empty address")
	}
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		// No port: the whole string is a host (an IPv6 literal needs brackets).
		if strings.Contains(s, ":") && !strings.HasPrefix(s, "[") {
			return "", 0, fmt.Errorf("%q is not host or host:port: %v", s, err)
		}
		host, portStr = strings.Trim(s, "[]"), strconv.Itoa(defPort)
	}
	if host == "" {
		return "", 0, fmt.Errorf("%q has no host", s)
	}
	if strings.ContainsAny(host, " /\\@?#") {
		return "", 0, fmt.Errorf("%q: invalid host %q", s, host)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: invalid port %q", s, portStr)
	}
	return host, port, nil
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// roleTag is the compact role of a member's tags.
func (c *Config) roleTag() string {
	switch {
	case c.Observer && c.Role == role.Manager:
		return tags.RoleObserverMgr
	case c.Observer:
		return tags.RoleObserver
	case c.Role == role.Worker:
		return tags.RoleWorker
	case c.ManagerMode == ActiveActive:
		return tags.RoleManagerActive
	default:
		return tags.RoleManager
	}
}
