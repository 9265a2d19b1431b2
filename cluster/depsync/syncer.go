// syncer.go holds the Syncer's type, lifecycle, following, publishing and
// applying in one file for now: its split by job (syncer, follow, apply,
// publish, service) is on branch depsync, which conflicts with the revision
// signing here and lands next.

package depsync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
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
	// ChunkSize is the size of the chunks blobs are streamed in. Default
	// 64 KiB.
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
	if o.ChunkSize <= 0 {
		o.ChunkSize = 64 << 10
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
	closed    bool

	sent     atomic.Int64
	recvMu   sync.Mutex
	received map[string]int64

	depsyncpb.UnimplementedDepSyncServer
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
		received:  make(map[string]int64),
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
	depsyncpb.RegisterDepSyncServer(srv, s)
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

// poke asks the follow loop for a round, without blocking.
func (s *Syncer) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// follow runs sync rounds on announcements, view changes of the active
// manager, peers' hints and a timer.
func (s *Syncer) follow() {
	defer s.wg.Done()
	views := s.n.Watch(s.ctx)
	t := time.NewTicker(s.opts.PollInterval)
	defer t.Stop()
	var active string
	var lastErr string
	for {
		select {
		case <-s.ctx.Done():
			if views != nil {
				for range views {
				}
			}
			return
		case v, ok := <-views:
			if !ok {
				views = nil
				continue
			}
			m, _ := v.Active(s.opts.ManagerSubDomain)
			key := fmt.Sprint(m.Name, m.Claim)
			if key == active {
				continue
			}
			active = key
		case <-t.C:
		case <-s.kick:
		}
		if s.n.Writable() {
			continue
		}
		_, err := s.Sync(s.ctx)
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if msg != lastErr && err != nil && s.ctx.Err() == nil {
			s.log.Warn("sync failed", "err", err)
		}
		lastErr = msg
	}
}

// Sync brings the node to the active manager's latest revision now and
// returns the node's current revision. The follow loop calls it on its own;
// call it to wait for a first sync at start-up, for example. On the active
// manager it does nothing. Errors: ErrNoManager, ErrFenced for an older
// revision, ErrRevisionFailed for one whose hook failed before, the
// manifest and blob errors (nothing changed on disk then but verified
// blobs in the cache), and ErrDeploy after a rollback.
func (s *Syncer) Sync(ctx context.Context) (Revision, error) {
	s.op.Lock()
	defer s.op.Unlock()
	if s.ctx.Err() != nil {
		return s.Current(), ErrClosed
	}
	if s.n.Writable() {
		return s.Current(), nil
	}
	mgr, ok := s.n.Active(s.opts.ManagerSubDomain)
	if !ok {
		return s.Current(), ErrNoManager
	}
	if mgr.Name == s.n.Name() {
		return s.Current(), nil
	}
	ep, ok := mgr.Endpoint(s.opts.Endpoint)
	if !ok {
		return s.Current(), fmt.Errorf("%w: %s has no %q endpoint", ErrNoManager, mgr.Name, s.opts.Endpoint)
	}
	start := time.Now()
	ctx, span := s.tr.Start(ctx, "depsync.Sync", trace.WithAttributes(attribute.String("depsync.manager", mgr.Name)))
	defer span.End()
	rev, err := s.sync(ctx, mgr.Name, ep)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return s.Current(), err
	}
	if !rev.IsZero() {
		span.SetAttributes(attribute.String("depsync.revision", rev.ID()))
		s.inst.deployed(ctx, time.Since(start), rev)
	}
	return s.Current(), nil
}

// sync is one round against the manager at ep; it returns the revision it
// applied, zero if none.
func (s *Syncer) sync(ctx context.Context, mgrName, ep string) (Revision, error) {
	cl, err := s.client(ep)
	if err != nil {
		return Revision{}, err
	}
	info, err := cl.Latest(ctx, &depsyncpb.LatestRequest{})
	if err != nil {
		return Revision{}, fmt.Errorf("depsync: Latest from %s: %w", mgrName, err)
	}
	rev, err := revOf(info)
	if err != nil || rev.IsZero() {
		return Revision{}, err
	}
	s.mu.Lock()
	cur, failed, dirty := s.cur, s.failed[rev.ID()], s.dirty
	s.mu.Unlock()
	switch {
	case rev.sameSlot(cur) && rev.Root == cur.Root && !dirty:
		return Revision{}, nil
	case rev.sameSlot(cur) && rev.Root != cur.Root:
		return Revision{}, fmt.Errorf("%w: %s from %s conflicts with the current %s", ErrFenced, rev, mgrName, cur)
	case rev.Before(cur):
		return Revision{}, fmt.Errorf("%w: %s from %s is older than the current %s", ErrFenced, rev.ID(), mgrName, cur.ID())
	case failed:
		return Revision{}, fmt.Errorf("%w: %s", ErrRevisionFailed, rev.ID())
	}
	pm, err := cl.Manifest(ctx, &depsyncpb.ManifestRequest{Epoch: rev.Epoch, Seq: rev.Seq}, grpc.MaxCallRecvMsgSize(manifestMaxBytes(s.lim)))
	if err != nil {
		return Revision{}, fmt.Errorf("depsync: Manifest %s from %s: %w", rev.ID(), mgrName, err)
	}
	if pm.GetEpoch() != rev.Epoch || pm.GetSeq() != rev.Seq {
		return Revision{}, fmt.Errorf("%w: asked %s for manifest %s, got %d-%d", ErrBadHash, mgrName, rev.ID(), pm.GetEpoch(), pm.GetSeq())
	}
	m, err := fromProto(pm, s.lim)
	if err != nil {
		return Revision{}, err
	}
	if m.rev.Root != rev.Root {
		return Revision{}, fmt.Errorf("%w: manifest %s from %s does not match its announced root", ErrBadHash, rev.ID(), mgrName)
	}
	if err := s.checkSigned(m, mgrName); err != nil {
		return Revision{}, err
	}
	if err := s.fetch(ctx, m, mgrName, ep); err != nil {
		return Revision{}, err
	}
	if err := s.apply(ctx, m, true); err != nil {
		return Revision{}, err
	}
	return m.rev, nil
}

// manifestMaxBytes bounds the size of a manifest message by the limits.
func manifestMaxBytes(l limits) int {
	n := l.maxFiles*(4096+64) + 1024
	if n < 4<<20 {
		n = 4 << 20
	}
	return n
}

// apply installs m, whose blobs are all present: tree, switch, hook,
// rollback on failure, gc. Caller holds s.op.
func (s *Syncer) apply(ctx context.Context, m *manifest, hook bool) error {
	id := m.rev.ID()
	if err := s.st.saveManifest(m); err != nil {
		return fmt.Errorf("depsync: saving manifest %s: %w", id, err)
	}
	dir, err := s.st.build(m)
	if err != nil {
		return fmt.Errorf("depsync: building %s: %w", id, err)
	}
	s.mu.Lock()
	prev := s.cur
	s.manifests[id] = m
	s.mu.Unlock()
	if err := s.st.switchTo(id); err != nil {
		return fmt.Errorf("depsync: switching to %s: %w", id, err)
	}
	s.mu.Lock()
	s.cur, s.dirty = m.rev, false
	s.mu.Unlock()
	if hook && s.opts.Deploy != nil {
		if herr := s.deploy(ctx, m.rev, dir); herr != nil {
			return s.rollback(ctx, m.rev, prev, herr)
		}
	}
	s.log.Info("switched", "revision", m.rev.String(), "files", m.rev.Files, "bytes", m.rev.Size)
	s.report(ctx, m.rev)
	s.gc()
	return nil
}

func (s *Syncer) deploy(ctx context.Context, rev Revision, dir string) (err error) {
	ctx, span := s.tr.Start(ctx, "depsync.Deploy", trace.WithAttributes(attribute.String("depsync.revision", rev.ID())))
	defer span.End()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("deploy hook panicked: %v", r)
		}
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
	}()
	return s.opts.Deploy(ctx, rev, dir)
}

// rollback switches back to prev after the hook failed on bad, marks bad
// failed and calls the hook for prev again.
func (s *Syncer) rollback(ctx context.Context, bad, prev Revision, herr error) error {
	s.log.Error("deploy hook failed; rolling back", "revision", bad.ID(), "to", prev.ID(), "err", herr)
	if err := s.st.markFailed(bad.ID()); err != nil {
		s.log.Error("marking revision failed", "revision", bad.ID(), "err", err)
	}
	prevID := ""
	if !prev.IsZero() {
		prevID = prev.ID()
	}
	if err := s.st.switchTo(prevID); err != nil {
		return fmt.Errorf("%w: %s: %v (and switching back to %s: %v)", ErrDeploy, bad.ID(), herr, prevID, err)
	}
	s.mu.Lock()
	s.cur = prev
	s.failed[bad.ID()] = true
	delete(s.manifests, bad.ID())
	s.mu.Unlock()
	s.st.removeTree(bad.ID())
	s.st.removeManifest(bad.ID())
	if prevID != "" && s.opts.Deploy != nil {
		if err := s.deploy(ctx, prev, s.st.treePath(prevID)); err != nil {
			s.log.Error("deploy hook failed on the previous revision too", "revision", prevID, "err", err)
		}
	}
	s.report(ctx, prev)
	return fmt.Errorf("%w: %s: %w", ErrDeploy, bad.ID(), herr)
}

// gc keeps the newest Keep revisions (current included), their blobs, and
// the failed marks newer than current. Caller holds s.op.
func (s *Syncer) gc() {
	s.mu.Lock()
	cur := s.cur
	ids := make([]string, 0, len(s.manifests))
	for id, m := range s.manifests {
		if !cur.Before(m.rev) { // never drop a revision newer than current
			ids = append(ids, id)
		}
	}
	sortIDs(ids)
	drop := map[string]bool{}
	if len(ids) > s.opts.Keep {
		for _, id := range ids[s.opts.Keep:] {
			if id != cur.ID() {
				drop[id] = true
				delete(s.manifests, id)
			}
		}
	}
	keepBlobs := map[[32]byte]bool{}
	for _, m := range s.manifests {
		for _, f := range m.files {
			keepBlobs[f.SHA256] = true
		}
	}
	for id := range s.failed {
		e, q, _ := parseID(id)
		if !cur.Before(Revision{Epoch: e, Seq: q}) {
			delete(s.failed, id)
			s.st.unmarkFailed(id)
		}
	}
	kept := make(map[string]bool, len(s.manifests))
	for id := range s.manifests {
		kept[id] = true
	}
	s.mu.Unlock()
	for id := range drop {
		s.st.removeManifest(id)
	}
	for _, id := range s.st.trees() {
		if !kept[id] {
			s.st.removeTree(id)
		}
	}
	s.st.gcBlobs(keepBlobs)
}

// Publish snapshots folder as a new revision and announces it. Only the
// active manager publishes: on any other node, or if the node stops being
// active meanwhile, it returns ErrNotActive. The revision is stamped with
// the node's election epoch and the next sequence number; an epoch older
// than the newest revision's is ErrFenced. folder's files are copied into
// the blob store while they are hashed, so later edits of folder do not
// affect the revision. Symlinks and special files are refused
// (ErrNotRegular), as are revisions over the limits (ErrTooLarge); empty
// directories are not part of a revision. The deploy hook is not called on
// the manager.
func (s *Syncer) Publish(ctx context.Context, folder string) (Revision, error) {
	if !s.n.Writable() {
		return Revision{}, ErrNotActive
	}
	epoch := s.n.Epoch()
	s.op.Lock()
	defer s.op.Unlock()
	if s.ctx.Err() != nil {
		return Revision{}, ErrClosed
	}
	ctx, span := s.tr.Start(ctx, "depsync.Publish")
	defer span.End()
	rev, err := s.publish(ctx, folder, epoch)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return Revision{}, err
	}
	span.SetAttributes(attribute.String("depsync.revision", rev.ID()), attribute.Int("depsync.files", rev.Files), attribute.Int64("depsync.bytes", rev.Size))
	// Followers do not trust the message: it only makes them ask the
	// active manager for its latest revision now.
	if err := s.n.Broadcast(ctx, MessageName, []byte(rev.ID())); err != nil {
		s.log.Warn("announcing revision", "revision", rev.ID(), "err", err)
	}
	return rev, nil
}

func (s *Syncer) publish(ctx context.Context, folder string, epoch uint64) (Revision, error) {
	last := s.newest()
	if epoch < last.Epoch {
		return Revision{}, fmt.Errorf("%w: epoch %d is older than revision %s", ErrFenced, epoch, last.ID())
	}
	var files []File
	var total int64
	var created [][32]byte
	ok := false
	defer func() {
		// A refused publish leaves the store as it found it.
		if !ok {
			for _, sum := range created {
				os.Remove(s.st.blobPath(sum))
			}
		}
	}()
	folder, err := filepath.EvalSymlinks(folder)
	if err != nil {
		return Revision{}, fmt.Errorf("depsync: publish: %w", err)
	}
	err = filepath.WalkDir(folder, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(folder, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%w: %q is a %v", ErrNotRegular, rel, d.Type())
		}
		if len(files) >= s.lim.maxFiles {
			return fmt.Errorf("%w: more than %d files", ErrTooLarge, s.lim.maxFiles)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		sum, size, isNew, err := s.st.putBlob(f, s.lim.maxFile, rel)
		if isNew {
			created = append(created, sum)
		}
		if err != nil {
			if errors.Is(err, ErrTooLarge) {
				return fmt.Errorf("%w: %q is over %d bytes", ErrTooLarge, rel, s.lim.maxFile)
			}
			return fmt.Errorf("depsync: snapshot of %q: %w", rel, err)
		}
		total += size
		if total > s.lim.maxTotal {
			return fmt.Errorf("%w: total over %d bytes at %q", ErrTooLarge, s.lim.maxTotal, rel)
		}
		files = append(files, File{Path: rel, Mode: fi.Mode().Perm(), Size: size, SHA256: sum})
		return nil
	})
	if err != nil {
		return Revision{}, err
	}
	sorted, err := validate(files, s.lim)
	if err != nil {
		return Revision{}, err
	}
	m := &manifest{files: sorted, rev: Revision{Epoch: epoch, Seq: last.Seq + 1, Root: rootHash(sorted), Files: len(sorted), Size: total}}
	if err := s.sign(m); err != nil {
		return Revision{}, err
	}
	// The snapshot took time: publish only if still active in this epoch.
	if !s.n.Writable() || s.n.Epoch() != epoch {
		return Revision{}, fmt.Errorf("%w: lost the active role during the snapshot", ErrNotActive)
	}
	if err := s.apply(ctx, m, false); err != nil {
		return Revision{}, err
	}
	ok = true
	s.log.Info("published", "revision", m.rev.String(), "files", m.rev.Files, "bytes", m.rev.Size)
	return m.rev, nil
}

// newest is the newest revision this node knows: current, or a newer
// kept one (a failed one included, so that sequence numbers never repeat).
func (s *Syncer) newest() Revision {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.cur
	for _, m := range s.manifests {
		if n.Before(m.rev) {
			n = m.rev
		}
	}
	for id := range s.failed {
		e, q, _ := parseID(id)
		if r := (Revision{Epoch: e, Seq: q}); n.Before(r) {
			n = r
		}
	}
	return n
}
