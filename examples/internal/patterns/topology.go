package patterns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/carbonkit/carbon/cluster"
	pb "github.com/carbonkit/carbon/examples/internal/catalogpb"
	"github.com/carbonkit/carbon/examples/internal/gateway"
	"github.com/carbonkit/carbon/examples/internal/server"
	"github.com/carbonkit/carbon/internal/wait"
	"github.com/carbonkit/carbon/lb"
	"github.com/carbonkit/carbon/role"
	"github.com/carbonkit/carbon/trust"
)

// ErrPattern is returned for a pattern other than 1, 2 or 3.
var ErrPattern = errors.New("patterns: pattern must be 1, 2 or 3")

// Options configures Start and Run.
type Options struct {
	// Pattern is 1, 2 or 3.
	Pattern int
	// Nginx, when set, is the path of an nginx binary: the balancers are
	// then real Nginx instances kept in sync by lb/nginx controllers,
	// instead of the in-process lb gateways.
	Nginx string
	// Profile is the gossip timing. Default cluster.ProfileLocal (a crashed
	// node is declared failed within about a second).
	Profile cluster.Profile
	// StepTimeout bounds each step of the tour. Default 30 s.
	StepTimeout time.Duration
	// Logger receives the nodes' logs. Default: discarded.
	Logger *slog.Logger
	// Progress, when set, receives each step of the tour as it ends.
	Progress io.Writer
	// MeterProvider and TracerProvider are passed to every node and
	// balancer; nil means the global (no-op unless an SDK is installed).
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
}

// Describe says in one line what a pattern is.
func Describe(pattern int) string {
	switch pattern {
	case 1:
		return "one manager (not HA) + two workers, one balancer in front of the workers"
	case 2:
		return "two managers (Active/Passive) in their own domain + two workers in another domain, one shared balancer"
	case 3:
		return "managers and workers as sub-domains of one domain, one dedicated balancer per sub-domain"
	}
	return "unknown pattern"
}

// balancer is a running balancer: an in-process lb gateway or Nginx.
type balancer interface {
	GRPCAddr() string
	HTTPAddr() string
	Close()
}

// namedBalancer is a balancer with its name and what it fronts.
type namedBalancer struct {
	name, fronts string
	b            balancer
	nodes        []*cluster.Node // its observer Nodes
}

// Topology is a running pattern.
type Topology struct {
	opts      Options
	Managers  []*server.Server
	Workers   []*server.Server
	balancers []namedBalancer
	// readsAddr/writesAddr are the gRPC balancers for reads and writes
	// (pattern 1 writes to its only manager directly); writesHTTP is the
	// HTTP address where the console is reached.
	readsAddr, writesAddr, writesHTTP string
	writesVia                         string
	// watch is an observer Node of the managers' domain.
	watch  *cluster.Node
	killed map[*server.Server]bool
	conns  []*grpc.ClientConn
	// cas are the CAs of the topology's domains (see certificate).
	caMu sync.Mutex
	cas  map[string]*trust.CA
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.StepTimeout <= 0 {
		o.StepTimeout = 30 * time.Second
	}
	if o.Profile == cluster.ProfileLAN {
		o.Profile = cluster.ProfileLocal
	}
}

func (t *Topology) clusterConfig(domain, name string, r role.Role, seeds ...string) cluster.Config {
	return cluster.Config{
		Domain: domain, Role: r, NodeName: name, BindAddr: "127.0.0.1:0",
		Seeds: seeds, Profile: t.opts.Profile, Logger: t.opts.Logger.With("node", name),
		MeterProvider: t.opts.MeterProvider, TracerProvider: t.opts.TracerProvider,
		Trust: t.certificate(domain, name, r),
	}
}

// certificate issues name a certificate for its role from the domain's
// CA, made on first use: every pattern runs with a trust root, as a
// production domain should.
func (t *Topology) certificate(domain, name string, r role.Role) *trust.Source {
	t.caMu.Lock()
	defer t.caMu.Unlock()
	if t.cas == nil {
		t.cas = map[string]*trust.CA{}
	}
	ca, ok := t.cas[domain]
	if !ok {
		var err error
		if ca, err = trust.NewCA(domain); err != nil {
			panic(err) // the domains here are valid trust domains
		}
		t.cas[domain] = ca
	}
	id := trust.Identity{Domain: domain, SubDomain: "lb", Role: trust.RoleObserver, Name: name}
	switch r {
	case role.Manager:
		id.SubDomain, id.Role = cluster.SubDomainManager, trust.RoleManager
	case role.Worker:
		id.SubDomain, id.Role = cluster.SubDomainWorker, trust.RoleWorker
	}
	is, err := ca.Issue(id)
	if err != nil {
		panic(err)
	}
	src, err := trust.SourceOf(ca, is)
	if err != nil {
		panic(err)
	}
	return src
}

func (t *Topology) observer(ctx context.Context, domain, name string, seeds ...string) (*cluster.Node, error) {
	cfg := t.clusterConfig(domain, name, role.None, seeds...)
	cfg.Observer = true
	return cluster.Join(ctx, cfg)
}

// Start starts the topology of opts.Pattern and waits until every node and
// balancer sees it whole. On error nothing is left running.
func Start(ctx context.Context, opts Options) (_ *Topology, err error) {
	if opts.Pattern < 1 || opts.Pattern > 3 {
		return nil, fmt.Errorf("%w, got %d", ErrPattern, opts.Pattern)
	}
	opts.defaults()
	t := &Topology{opts: opts, killed: map[*server.Server]bool{}}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	mgrDomain := fmt.Sprintf("carbon.pattern%d", opts.Pattern)
	wkDomain := mgrDomain
	if opts.Pattern == 2 {
		mgrDomain, wkDomain = "carbon.pattern2.mgt", "carbon.pattern2.worker"
	}
	managers := 2
	if opts.Pattern == 1 {
		managers = 1
	}

	// Managers first: manager-1 founds the managers' domain and is elected.
	var mgrSeed string
	for i := 1; i <= managers; i++ {
		var seeds []string
		if mgrSeed != "" {
			seeds = []string{mgrSeed}
		}
		ccfg := t.clusterConfig(mgrDomain, fmt.Sprintf("manager-%d", i), role.Manager, seeds...)
		// manager-1 founds the domain alone: Bootstrap says it may elect
		// itself without reaching a seed (it has none today, so it would
		// claim anyway; the flag keeps that true if it is ever given the
		// other managers as seeds, as a restartable deployment lists them).
		ccfg.Bootstrap = i == 1
		s, err := server.Start(ctx, server.Config{Cluster: ccfg, PlainGRPC: opts.Nginx != ""})
		if err != nil {
			return nil, fmt.Errorf("patterns: start manager-%d: %w", i, err)
		}
		t.Managers = append(t.Managers, s)
		if mgrSeed == "" {
			mgrSeed = s.Node().Self().Addr
		}
	}
	// Workers: in the same domain (patterns 1, 3), or in their own and
	// following the managers' domain as observers (pattern 2).
	wkSeed := mgrSeed
	if opts.Pattern == 2 {
		wkSeed = ""
	}
	for i := 1; i <= 2; i++ {
		name := fmt.Sprintf("worker-%d", i)
		var seeds []string
		if wkSeed != "" {
			seeds = []string{wkSeed}
		}
		cfg := server.Config{Cluster: t.clusterConfig(wkDomain, name, role.Worker, seeds...), PlainGRPC: opts.Nginx != ""}
		if opts.Pattern == 2 {
			f := t.clusterConfig(mgrDomain, name, role.None, mgrSeed)
			cfg.Follow = &f
		}
		s, err := server.Start(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("patterns: start %s: %w", name, err)
		}
		t.Workers = append(t.Workers, s)
		if wkSeed == "" {
			wkSeed = s.Node().Self().Addr
		}
	}

	if err := t.startBalancers(ctx, mgrDomain, wkDomain, mgrSeed, wkSeed); err != nil {
		return nil, err
	}
	if t.watch, err = t.observer(ctx, mgrDomain, "tour", mgrSeed); err != nil {
		return nil, fmt.Errorf("patterns: tour observer: %w", err)
	}
	if err := t.waitWhole(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Topology) startBalancers(ctx context.Context, mgrDomain, wkDomain, mgrSeed, wkSeed string) error {
	start := func(name, fronts string, reads gateway.Route, writes *gateway.Route) (balancer, error) {
		if t.opts.Nginx != "" {
			return startNginx(ctx, t.opts, name, reads, writes)
		}
		var lbOpts []lb.Option
		if t.opts.MeterProvider != nil {
			lbOpts = append(lbOpts, lb.WithMeterProvider(t.opts.MeterProvider))
		}
		return gateway.Start(gateway.Config{Reads: reads, Writes: writes, Logger: t.opts.Logger.With("balancer", name), Options: lbOpts})
	}
	add := func(name, fronts string, reads gateway.Route, writes *gateway.Route, nodes ...*cluster.Node) (balancer, error) {
		b, err := start(name, fronts, reads, writes)
		if err != nil {
			for _, n := range nodes {
				n.Close()
			}
			return nil, fmt.Errorf("patterns: start %s: %w", name, err)
		}
		t.balancers = append(t.balancers, namedBalancer{name: name, fronts: fronts, b: b, nodes: nodes})
		return b, nil
	}
	switch t.opts.Pattern {
	case 1:
		n, err := t.observer(ctx, wkDomain, "balancer-worker", wkSeed)
		if err != nil {
			return err
		}
		b, err := add("balancer-worker", "the workers", gateway.Route{Node: n, SubDomain: cluster.SubDomainWorker, Policy: lb.RoundRobin}, nil, n)
		if err != nil {
			return err
		}
		m := t.Managers[0]
		t.readsAddr, t.writesAddr, t.writesHTTP, t.writesVia = b.GRPCAddr(), m.GRPCAddr(), m.HTTPAddr(), "manager-1 directly (pattern 1 has no manager balancer)"
	case 2:
		nm, err := t.observer(ctx, mgrDomain, "balancer", mgrSeed)
		if err != nil {
			return err
		}
		nw, err := t.observer(ctx, wkDomain, "balancer", wkSeed)
		if err != nil {
			nm.Close()
			return err
		}
		b, err := add("balancer", "reads to the workers, writes to the active manager",
			gateway.Route{Node: nw, SubDomain: cluster.SubDomainWorker, Policy: lb.RoundRobin},
			&gateway.Route{Node: nm, SubDomain: cluster.SubDomainManager, Policy: lb.ActiveFirst}, nm, nw)
		if err != nil {
			return err
		}
		t.readsAddr, t.writesAddr, t.writesHTTP, t.writesVia = b.GRPCAddr(), b.GRPCAddr(), b.HTTPAddr(), "the shared balancer"
	case 3:
		nw, err := t.observer(ctx, wkDomain, "balancer-worker", wkSeed)
		if err != nil {
			return err
		}
		bw, err := add("balancer-worker", "the worker sub-domain", gateway.Route{Node: nw, SubDomain: cluster.SubDomainWorker, Policy: lb.RoundRobin}, nil, nw)
		if err != nil {
			return err
		}
		nm, err := t.observer(ctx, mgrDomain, "balancer-mgt", mgrSeed)
		if err != nil {
			return err
		}
		bm, err := add("balancer-mgt", "the mgt sub-domain (active manager first)", gateway.Route{Node: nm, SubDomain: cluster.SubDomainManager, Policy: lb.ActiveFirst}, nil, nm)
		if err != nil {
			return err
		}
		t.readsAddr, t.writesAddr, t.writesHTTP, t.writesVia = bw.GRPCAddr(), bm.GRPCAddr(), bm.HTTPAddr(), "the manager balancer"
	}
	return nil
}

// waitWhole waits until every node sees every member of its domain serving,
// the managers' domain has an active manager, and reads and writes go
// through the balancers.
func (t *Topology) waitWhole(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var all []*cluster.Node
	for _, s := range slices.Concat(t.Managers, t.Workers) {
		all = append(all, s.Node())
		if s.Follow() != nil {
			all = append(all, s.Follow())
		}
	}
	for _, b := range t.balancers {
		all = append(all, b.nodes...)
	}
	all = append(all, t.watch)
	want := map[string]int{}
	for _, s := range slices.Concat(t.Managers, t.Workers) {
		want[s.Node().Domain()]++
	}
	whole := func() string {
		for _, n := range all {
			serving := 0
			for _, m := range n.View().Alive("") {
				if m.State == cluster.Serving {
					serving++
				}
			}
			if serving != want[n.Domain()] {
				return fmt.Sprintf("%s sees %d of %d members of %s serving", n.Name(), serving, want[n.Domain()], n.Domain())
			}
		}
		if _, ok := t.watch.Active(cluster.SubDomainManager); !ok {
			return "no active manager yet"
		}
		return ""
	}
	if err := poll(ctx, 20*time.Millisecond, func() (bool, string) { w := whole(); return w == "", w }); err != nil {
		return fmt.Errorf("patterns: topology not whole: %w", err)
	}
	reads, err := t.client(t.readsAddr)
	if err != nil {
		return err
	}
	err = poll(ctx, 20*time.Millisecond, func() (bool, string) {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := reads.ListArtifacts(cctx, &pb.ListArtifactsRequest{})
		return err == nil, fmt.Sprint(err)
	})
	if err != nil {
		return fmt.Errorf("patterns: reads through the balancer: %w", err)
	}
	return nil
}

// writesClient is the client of t.writesAddr: a balancer, or in pattern 1
// the only manager, reached over mutual TLS when it serves that way.
func (t *Topology) writesClient() (pb.CatalogClient, error) {
	if m := t.Managers[0]; t.opts.Pattern == 1 && m.PeerTLS() {
		d := m.Node().Domain()
		creds := credentials.NewTLS(trust.ClientTLSConfig(t.certificate(d, "tour-client", role.None), trust.AuthorizeDomain(d)))
		return t.client(t.writesAddr, grpc.WithTransportCredentials(creds))
	}
	return t.client(t.writesAddr)
}

// client returns a Catalog client of a gRPC address, closed with t.
func (t *Topology) client(addr string, opts ...grpc.DialOption) (pb.CatalogClient, error) {
	cc, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		return nil, err
	}
	t.conns = append(t.conns, cc)
	return pb.NewCatalogClient(cc), nil
}

// serverClient returns a Catalog client of one server, closed with t. Its
// calls fail when another server answers at that address: once s stops,
// any process may take its port, and its node's name is no proof (another
// topology's worker-2 has it too).
func (t *Topology) serverClient(s *server.Server) (pb.CatalogClient, error) {
	opts := []grpc.DialOption{grpc.WithUnaryInterceptor(expectInstance(s))}
	if s.PeerTLS() {
		d := s.Node().Domain()
		creds := credentials.NewTLS(trust.ClientTLSConfig(t.certificate(d, "tour-client", role.None), trust.AuthorizeDomain(d)))
		opts = append(opts, grpc.WithTransportCredentials(creds))
	}
	return t.client(s.GRPCAddr(), opts...)
}

func expectInstance(s *server.Server) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		var md metadata.MD
		err := invoker(ctx, method, req, reply, cc, append(opts, grpc.Header(&md))...)
		got := md.Get(server.InstanceHeader)
		if len(got) == 0 && err != nil {
			return err // no answer at all
		}
		if len(got) != 1 || got[0] != s.Instance() {
			return fmt.Errorf("%s: another server answered at %s (instance %q, not %q)", s.Node().Name(), s.GRPCAddr(), got, s.Instance())
		}
		return err
	}
}

// Print writes what runs where.
func (t *Topology) Print(w io.Writer) {
	fmt.Fprintf(w, "pattern %d: %s\n", t.opts.Pattern, Describe(t.opts.Pattern))
	for _, s := range slices.Concat(t.Managers, t.Workers) {
		n := s.Node()
		extra := ""
		if s.Follow() != nil {
			extra = fmt.Sprintf(" (follows %s as an observer)", s.Follow().Domain())
		}
		fmt.Fprintf(w, "  %-16s %-8s domain %-22s sub-domain %-7s grpc %-16s http %s%s\n",
			n.Name(), n.Role(), n.Domain(), n.SubDomain(), s.GRPCAddr(), s.HTTPAddr(), extra)
	}
	for _, b := range t.balancers {
		kind := "lb gateway"
		if t.opts.Nginx != "" {
			kind = "nginx"
		}
		fmt.Fprintf(w, "  %-16s %-8s in front of %s: grpc %s http %s\n", b.name, kind, b.fronts, b.b.GRPCAddr(), b.b.HTTPAddr())
	}
}

// StatusURLs are the status pages of the members still running, and of the
// balancers.
func (t *Topology) StatusURLs() []string {
	var out []string
	for _, s := range slices.Concat(t.Managers, t.Workers) {
		if !t.killed[s] {
			out = append(out, fmt.Sprintf("http://%s/status  (%s)", s.HTTPAddr(), s.Node().Name()))
		}
	}
	if t.opts.Nginx == "" {
		for _, b := range t.balancers {
			out = append(out, fmt.Sprintf("http://%s%s  (%s)", b.b.HTTPAddr(), gateway.StatusPath, b.name))
		}
	}
	return out
}

// StatusURL is the status page of a live member (the first live worker).
func (t *Topology) StatusURL() string {
	for _, s := range slices.Concat(t.Workers, t.Managers) {
		if !t.killed[s] {
			return "http://" + s.HTTPAddr() + "/status"
		}
	}
	return ""
}

// Close stops everything at once.
func (t *Topology) Close() {
	for _, c := range t.conns {
		c.Close()
	}
	for _, b := range t.balancers {
		b.b.Close()
		for _, n := range b.nodes {
			n.Close()
		}
	}
	if t.watch != nil {
		t.watch.Close()
	}
	for _, s := range slices.Concat(t.Managers, t.Workers) {
		s.Kill()
	}
}

// poll calls cond every interval until it holds or ctx ends; the error
// says what cond last reported.
func poll(ctx context.Context, interval time.Duration, cond func() (bool, string)) error {
	var why string
	if err := wait.Until(ctx, interval, func() bool {
		var ok bool
		ok, why = cond()
		return ok
	}); err != nil {
		return fmt.Errorf("%w (last: %s)", ctx.Err(), why)
	}
	return nil
}

func names(ms map[string]int) string {
	var keys []string
	for k := range ms {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s ×%d", k, ms[k])
	}
	return b.String()
}
