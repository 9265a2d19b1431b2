package depsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/internal/depsyncpb"
	"github.com/carbonkit/carbon/role"
	"github.com/carbonkit/carbon/trust"
)

// MessageName is the cluster message a manager broadcasts when it
// publishes a revision; its payload is the revision's ID.
const MessageName = "depsync.revision"

// DeployFunc is the application's deploy hook: it loads revision rev, whose
// tree is dir (revisions/<id> under Options.Dir; the current symlink points
// to it while the hook runs). An error rolls the node back to its previous
// revision, for which the hook is called again.
type DeployFunc func(ctx context.Context, rev Revision, dir string) error

// Options configure a Syncer. The zero value of each field means the
// default documented on it; only Dir is required.
type Options struct {
	// Dir is the folder the synchronizer owns: blob store, revisions and
	// the current symlink (see [Syncer.Dir]). Nothing else may write it.
	Dir string
	// Endpoint is the name of the member endpoint where the DepSync gRPC
	// service is served (registered with [Syncer.Register]). Default "grpc".
	Endpoint string
	// ManagerSubDomain is the sub-domain whose active manager this node
	// follows. Default: the node's own sub-domain for a manager, "mgt"
	// otherwise.
	ManagerSubDomain string
	// Deploy is called after every switch to a new revision on a follower
	// (never by Publish). nil means no hook.
	Deploy DeployFunc
	// Keep is how many revisions (trees and manifests) a node keeps,
	// the current one included. Default 3.
	Keep int
	// MaxFileSize, MaxTotalSize and MaxFiles bound a revision, both when
	// publishing and when following. Defaults: 1 GiB, 16 GiB, 100,000.
	MaxFileSize  int64
	MaxTotalSize int64
	MaxFiles     int
	// ChunkSize is how many bytes of a blob a node reads at once when it
	// serves it (it sends them in messages of at most 32 KiB). Default and
	// maximum 1 MiB.
	ChunkSize int
	// Parallel is how many blobs a follower fetches at once. Default 4.
	Parallel int
	// PollInterval is how often a follower asks the active manager for its
	// latest revision, besides announcements and view changes. Default 10 s.
	PollInterval time.Duration
	// PeerWait is how long a peer asked for a blob it is still fetching
	// waits for it before answering NotFound (the asker then falls back to
	// the manager). Default 10 s.
	PeerWait time.Duration
	// FanOut is how many followers fetch from each follower (and from the
	// manager): the followers, sorted by name, form a tree of this degree
	// rooted at the active manager. Default 2. A negative value disables
	// peer fetching: every follower fetches from the manager.
	FanOut int
	// DialOptions are used to dial managers and peers. Default: with a
	// trust root on the Node, mutual TLS from its certificates (peers'
	// gRPC servers then use trust.ServerTLSConfig); without, insecure
	// transport credentials (plaintext), as on a private network.
	DialOptions []grpc.DialOption

	// Logger, MeterProvider and TracerProvider default to slog.Default()
	// and the global OpenTelemetry providers.
	Logger         *slog.Logger
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider

	// Test seams: no follow loop; a call after each fetched blob.
	testNoFollow  bool
	testAfterBlob func(ctx context.Context)
}

func (o *Options) defaults(n *cluster.Node) error {
	if o.Dir == "" {
		return errors.New("depsync: Options.Dir is required")
	}
	if o.Endpoint == "" {
		o.Endpoint = "grpc"
	}
	if o.ManagerSubDomain == "" {
		o.ManagerSubDomain = cluster.SubDomainManager
		if n.Role() == role.Manager {
			o.ManagerSubDomain = n.SubDomain()
		}
	}
	if o.Keep <= 0 {
		o.Keep = 3
	}
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = 1 << 30
	}
	if o.MaxTotalSize <= 0 {
		o.MaxTotalSize = 16 << 30
	}
	if o.MaxFiles <= 0 {
		o.MaxFiles = 100_000
	}
	if o.ChunkSize <= 0 || o.ChunkSize > ioBuffer {
		o.ChunkSize = ioBuffer
	}
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 10 * time.Second
	}
	if o.PeerWait <= 0 {
		o.PeerWait = 10 * time.Second
	}
	if o.FanOut == 0 {
		o.FanOut = 2
	}
	if o.DialOptions == nil {
		creds := insecure.NewCredentials()
		if src := n.TrustSource(); src != nil {
			creds = credentials.NewTLS(trust.ClientTLSConfig(src, trust.AuthorizeDomain(n.Domain())))
		}
		o.DialOptions = []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MeterProvider == nil {
		o.MeterProvider = otel.GetMeterProvider()
	}
	if o.TracerProvider == nil {
		o.TracerProvider = otel.GetTracerProvider()
	}
	return nil
}

// Stats are a node's counters since New.
type Stats struct {
	// Current is the revision the deployment folder holds.
	Current Revision
	// BytesSent is how many blob bytes this node served to others.
	BytesSent int64
	// BytesReceived is how many blob bytes this node received, by the name
	// of the member that sent them.
	BytesReceived map[string]int64
}

// Syncer publishes revisions (on the active manager) and follows them (on
// every other node). Create it with New; it serves peers once registered on
// a gRPC server with Register. All methods are safe for concurrent use.
type Syncer struct {
	n     *cluster.Node
	opts  Options
	lim   limits
	st    *store
	log   *slog.Logger
	tr    trace.Tracer
	inst  instruments
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup
	kick  chan struct{}
	close sync.Once

	// op serializes everything that writes the store: Publish, Sync, gc.
	op sync.Mutex

	mu        sync.Mutex
	cur       Revision             // what current points to
	manifests map[string]*manifest // kept revisions, by ID
	failed    map[string]bool      // revisions whose hook failed
	dirty     bool                 // current tree did not match its manifest on open
	waiters   map[[32]byte][]chan struct{}
	conns     map[string]*grpc.ClientConn
	noDepsync map[string]bool // endpoints that answered Unimplemented
	noBatchEp map[string]bool // endpoints that answered Unimplemented to Blobs
	closed    bool

	sent     atomic.Int64
	recvMu   sync.Mutex
	received map[string]int64
	// The metric attributes of a node's counters, built once: building an
	// attribute set sorts and hashes it, which per blob adds up.
	sentAttrs metric.MeasurementOption
	recvAttrs map[string]metric.MeasurementOption // by source name, under recvMu
}

// New opens the synchronizer's folder (creating it), reconciles the current
// tree with its manifest, and starts following the active manager of
// Options.ManagerSubDomain in the background. Call Register to serve peers
// and Close to stop.
func New(n *cluster.Node, opts Options) (*Syncer, error) {
	if n == nil {
		return nil, errors.New("depsync: nil node")
	}
	if err := opts.defaults(n); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("depsync: Options.Dir: %w", err)
	}
	opts.Dir = dir
	st, err := openStore(dir)
	if err != nil {
		return nil, err
	}
	s := &Syncer{
		n: n, opts: opts, st: st,
		lim:       limits{maxFile: opts.MaxFileSize, maxTotal: opts.MaxTotalSize, maxFiles: opts.MaxFiles},
		log:       opts.Logger.With("component", "depsync", "node", n.Name()),
		tr:        opts.TracerProvider.Tracer("github.com/carbonkit/carbon/cluster/depsync"),
		kick:      make(chan struct{}, 1),
		waiters:   make(map[[32]byte][]chan struct{}),
		conns:     make(map[string]*grpc.ClientConn),
		noDepsync: make(map[string]bool),
		noBatchEp: make(map[string]bool),
		received:  make(map[string]int64),
		recvAttrs: make(map[string]metric.MeasurementOption),
		sentAttrs: metric.WithAttributeSet(attribute.NewSet(attribute.String("node", n.Name()))),
	}
	if s.inst, err = newInstruments(opts.MeterProvider); err != nil {
		return nil, err
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	s.n.SetRevision(cluster.RevisionID{Epoch: s.cur.Epoch, Seq: s.cur.Seq}) // none yet is a revision too: the zero one
	s.ctx, s.stop = context.WithCancel(context.Background())
	if err := n.Handle(MessageName, func(cluster.Message) { s.poke() }); err != nil {
		s.stop()
		return nil, err
	}
	if !opts.testNoFollow {
		s.wg.Add(1)
		go s.follow()
	}
	return s, nil
}

// load reads the store's state and reconciles the current tree.
func (s *Syncer) load() error {
	ms, err := s.st.loadManifests(s.lim)
	if err != nil {
		return fmt.Errorf("depsync: reading manifests: %w", err)
	}
	failed, err := s.st.failed()
	if err != nil {
		return fmt.Errorf("depsync: %w", err)
	}
	s.manifests, s.failed = ms, failed
	id := s.st.current()
	m := ms[id]
	if id != "" && m == nil {
		// The tree's manifest is gone: the folder cannot be trusted.
		s.log.Warn("current revision has no manifest; it will be fetched again", "revision", id)
		s.st.switchTo("")
		return nil
	}
	if m == nil {
		return nil
	}
	s.cur = m.rev
	if !s.st.verifyTree(m) {
		if s.haveBlobs(m) {
			s.log.Warn("current tree differs from its manifest; rebuilding", "revision", id)
			if _, err := s.st.build(m); err != nil {
				return fmt.Errorf("depsync: rebuilding %s: %w", id, err)
			}
		} else {
			s.log.Warn("current tree differs from its manifest; it will be fetched again", "revision", id)
			s.dirty = true
		}
	}
	s.report(s.ctx, s.cur)
	return nil
}

// report records the revision the node now runs: in the metrics, and in
// the node's tags, where every member (the status page, the carbon CLI)
// reads it as cluster.Member.Revision.
func (s *Syncer) report(ctx context.Context, r Revision) {
	s.inst.revision(ctx, s.n.Name(), r)
	s.n.SetRevision(cluster.RevisionID{Epoch: r.Epoch, Seq: r.Seq})
}

func (s *Syncer) haveBlobs(m *manifest) bool {
	for _, f := range m.files {
		if !s.st.hasBlob(f.SHA256) {
			return false
		}
	}
	return true
}

// Register registers the DepSync service on srv. Every node registers it:
// followers serve the blobs they have to their peers.
func (s *Syncer) Register(srv grpc.ServiceRegistrar) {
	depsyncpb.RegisterDepSyncServer(srv, &service{s: s})
}

// Dir returns the deployment folder: the current symlink, which points to
// the tree of the current revision. Applications read it; nothing but the
// Syncer may write under Options.Dir.
func (s *Syncer) Dir() string { return s.st.currentPath() }

// Current returns the revision the deployment folder holds (the zero
// Revision if none).
func (s *Syncer) Current() Revision {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Stats returns the node's counters.
func (s *Syncer) Stats() Stats {
	st := Stats{Current: s.Current(), BytesSent: s.sent.Load(), BytesReceived: map[string]int64{}}
	s.recvMu.Lock()
	for k, v := range s.received {
		st.BytesReceived[k] = v
	}
	s.recvMu.Unlock()
	return st
}

// Close stops following, closes the connections to peers and waits for
// the Syncer's goroutines. The files stay: a new Syncer on the same Dir
// resumes. Close is idempotent. It does not stop the gRPC server the
// service was registered on; calls to it fail with Unavailable afterwards.
func (s *Syncer) Close() error {
	s.close.Do(func() {
		s.n.Handle(MessageName, nil)
		s.stop()
		s.wg.Wait()
		s.mu.Lock()
		s.closed = true
		conns := s.conns
		s.conns = map[string]*grpc.ClientConn{}
		s.mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return nil
}
