package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/google/uuid"

	"github.com/carbonkit/carbon/cluster"
	pb "github.com/carbonkit/carbon/examples/internal/catalogpb"
	"github.com/carbonkit/carbon/role"
	"github.com/carbonkit/carbon/trust"
)

// Config configures a Server.
type Config struct {
	// Cluster is the node's configuration. Start sets its "grpc" and
	// "http" endpoints from the listeners and DeferServing, so the node
	// becomes serving only once both servers accept connections.
	Cluster cluster.Config
	// GRPCAddr and HTTPAddr are the listen addresses. Default
	// "127.0.0.1:0" (a free port).
	GRPCAddr, HTTPAddr string
	// AdvertiseHost, when set, replaces the host of the advertised
	// endpoints (needed when listening on 0.0.0.0).
	AdvertiseHost string
	// Follow, when set, joins a second domain as an observer to receive the
	// catalog changes its managers broadcast: pattern 2's workers, whose
	// managers are a cluster of their own.
	Follow *cluster.Config
	// DiscloseActive makes rejected writes name the active manager's
	// "grpc" endpoint (role.WithActiveDisclosure).
	DiscloseActive bool
	// PlainGRPC serves gRPC without TLS even when Cluster.Trust is set,
	// for a balancer that cannot present a certificate (Nginx's grpc_pass
	// over h2c). By default a node with a trust root serves gRPC over
	// mutual TLS, and its Guard takes writes only from a manager's or an
	// observer's (a gateway's) certificate: never from a worker's.
	PlainGRPC bool
	// Metrics, when set, is served at GET /metrics (Prometheus text
	// format; telemetry.Providers.Metrics).
	Metrics http.Handler
	// HistoryPath, when set, is a file the server appends its history
	// record to: one JSON line per write acknowledged or refused, change
	// applied, catch-up, and change of Writable (see history.go).
	HistoryPath string
}

// Server is a running worker or manager.
type Server struct {
	node, follow *cluster.Node
	guard        *role.Guard
	store        *store
	log          *slog.Logger
	grpc         *grpc.Server
	http         *http.Server
	grpcAddr     string
	httpAddr     string
	served       sync.WaitGroup
	stopOnce     sync.Once
	instance     string // a UUID for this run of the server
	peerTLS      bool   // gRPC is served over mutual TLS
	metrics      http.Handler
	hist         *history
	seeded       []*cluster.Node // nodes joined with seeds
	peers        *http.Client    // snapshot and confirmation requests to peers

	// wmu serializes writes (and a new active's catch-up), so that
	// changes are numbered, sent and confirmed in order.
	wmu sync.Mutex
	// activeEpoch is the epoch at which this manager caught up with its
	// peers (takeOver); it takes writes only at that epoch.
	activeEpoch atomic.Uint64
	// ready: the catalog has caught up (at start, or after a gap).
	ready       atomic.Bool
	caughtUp    chan struct{} // closed at the first catch-up
	kick        chan struct{} // a gap: runSync looks
	wakeWatch   chan struct{} // runWatch looks now
	quit        chan struct{} // closed when the server stops
	quitOnce    sync.Once
	bg          sync.WaitGroup // runSync, runWatch
	lastSyncErr atomic.Value   // string: why the last catch-up failed
	readyMu     sync.Mutex     // guards closing, held around runSync's Ready
	closing     bool           // Shutdown has begun: runSync must not call Ready
}

// PeerTLS reports whether the server's gRPC runs over mutual TLS (a trust
// root, and not Config.PlainGRPC).
func (s *Server) PeerTLS() bool { return s.peerTLS }

// InstanceHeader is the gRPC response header in which every server sends
// its Instance (on unary calls: every Catalog call; not health watches).
const InstanceHeader = "carbon-instance"

// Instance identifies this run of the server: a UUID it sends in the
// InstanceHeader of every unary response, so that a client dialling its
// address can tell it from another server that took the port after this
// one stopped (node names repeat: every topology has a worker-1).
func (s *Server) Instance() string { return s.instance }

// stamp sends the InstanceHeader; it comes first in the chain, so that a
// call the Guard rejects carries it too.
func (s *Server) stamp(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := grpc.SetHeader(ctx, metadata.Pairs(InstanceHeader, s.instance)); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// Start listens, joins the domain, starts serving, and marks the node
// serving. On error nothing is left running.
func Start(ctx context.Context, cfg Config) (s *Server, err error) {
	ccfg := cfg.Cluster
	if ccfg.Observer {
		return nil, fmt.Errorf("server: Cluster.Observer: a server is a worker or a manager")
	}
	log := ccfg.Logger
	if log == nil {
		log = slog.Default()
	}
	gl, err := net.Listen("tcp", orDefault(cfg.GRPCAddr, "127.0.0.1:0"))
	if err != nil {
		return nil, fmt.Errorf("server: gRPC listen address: %w", err)
	}
	hl, err := net.Listen("tcp", orDefault(cfg.HTTPAddr, "127.0.0.1:0"))
	if err != nil {
		gl.Close()
		return nil, fmt.Errorf("server: HTTP listen address: %w", err)
	}
	s = &Server{store: newStore(), log: log, grpcAddr: advertise(gl.Addr(), cfg.AdvertiseHost), httpAddr: advertise(hl.Addr(), cfg.AdvertiseHost),
		caughtUp: make(chan struct{}), kick: make(chan struct{}, 1), wakeWatch: make(chan struct{}, 1), quit: make(chan struct{}),
		peers: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}}}
	s.instance = uuid.NewString()
	s.metrics = cfg.Metrics
	// Not s in the deferred call: every error return sets the named result
	// s to nil before deferred calls run.
	started := s
	defer func() {
		if err != nil {
			gl.Close()
			hl.Close()
			started.Kill()
		}
	}()

	ccfg.Endpoints = maps.Clone(ccfg.Endpoints)
	if ccfg.Endpoints == nil {
		ccfg.Endpoints = map[string]string{}
	}
	ccfg.Endpoints["grpc"] = s.grpcAddr
	ccfg.Endpoints["http"] = s.httpAddr
	ccfg.DeferServing = true
	if s.node, err = cluster.Join(ctx, ccfg); err != nil {
		return nil, err
	}
	if len(ccfg.Seeds) > 0 {
		s.seeded = append(s.seeded, s.node)
	}
	if s.hist, err = openHistory(cfg.HistoryPath, s.node.Name()); err != nil {
		return nil, err
	}
	if err := s.node.Handle(MsgDeploy, s.onChange(false)); err != nil {
		return nil, err
	}
	if err := s.node.Handle(MsgUndeploy, s.onChange(true)); err != nil {
		return nil, err
	}
	if cfg.Follow != nil {
		fcfg := *cfg.Follow
		fcfg.Observer, fcfg.Role, fcfg.SubDomain = true, role.None, ""
		if fcfg.Logger == nil {
			fcfg.Logger = log
		}
		if s.follow, err = cluster.Join(ctx, fcfg); err != nil {
			return nil, fmt.Errorf("server: following domain %q: %w", fcfg.Domain, err)
		}
		if len(fcfg.Seeds) > 0 {
			s.seeded = append(s.seeded, s.follow)
		}
		if err := s.follow.Handle(MsgDeploy, s.onChange(false)); err != nil {
			return nil, err
		}
		if err := s.follow.Handle(MsgUndeploy, s.onChange(true)); err != nil {
			return nil, err
		}
	}

	var gopts []role.GuardOption
	if cfg.DiscloseActive {
		gopts = append(gopts, role.WithActiveDisclosure("grpc"))
	}
	if ccfg.MeterProvider != nil {
		gopts = append(gopts, role.WithMeterProvider(ccfg.MeterProvider))
	}
	var creds []grpc.ServerOption
	if src := s.node.TrustSource(); src != nil && !cfg.PlainGRPC {
		d := s.node.Domain()
		gopts = append(gopts, role.RequireWriterIdentity(d, trust.RoleManager, trust.RoleObserver))
		creds = append(creds, grpc.Creds(credentials.NewTLS(trust.ServerTLSConfig(src, trust.AuthorizeDomain(d)))))
		s.peerTLS = true
	}
	s.guard = role.NewGuard(s.node, gopts...)
	s.grpc = grpc.NewServer(append(creds,
		grpc.ChainUnaryInterceptor(s.stamp, s.guard.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(s.guard.StreamServerInterceptor()),
	)...)
	pb.RegisterCatalogServer(s.grpc, &catalog{s: s})
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, hs)

	s.http = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	s.served.Add(2)
	go func() {
		defer s.served.Done()
		if err := s.grpc.Serve(gl); err != nil {
			log.Error("gRPC server stopped", "err", err)
		}
	}()
	go func() {
		defer s.served.Done()
		if err := s.http.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP server stopped", "err", err)
		}
	}()
	// Catch up before reporting ready: until then reads answer 503 and
	// the node stays "starting", so no balancer sends it anything.
	s.bg.Add(1)
	go s.runSync()
	if ccfg.Role == role.Manager {
		s.bg.Add(1)
		go s.runWatch()
	}
	select {
	case <-s.caughtUp:
	case <-ctx.Done():
		why, _ := s.lastSyncErr.Load().(string)
		return nil, fmt.Errorf("server: catching up the catalog: %w (last: %s)", ctx.Err(), why)
	}
	if err := s.node.Ready(ctx); err != nil {
		return nil, err
	}
	log.Info("serving", "node", s.node.Name(), "role", ccfg.Role, "domain", s.node.Domain(),
		"sub_domain", s.node.SubDomain(), "grpc", s.grpcAddr, "http", s.httpAddr)
	return s, nil
}

// Node is the server's node in its domain.
func (s *Server) Node() *cluster.Node { return s.node }

// Follow is the observer node in the followed domain, nil if none.
func (s *Server) Follow() *cluster.Node { return s.follow }

// Guard is the server's role Guard.
func (s *Server) Guard() *role.Guard { return s.guard }

// GRPCAddr and HTTPAddr are the advertised endpoints.
func (s *Server) GRPCAddr() string { return s.grpcAddr }

// HTTPAddr is the advertised HTTP endpoint.
func (s *Server) HTTPAddr() string { return s.httpAddr }

// Shutdown stops gracefully: drain (balancers stop sending new work; an
// active manager hands over to a stand-by), finish in-flight calls, then
// leave the domain. ctx bounds the whole; past it, what remains is cut.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	// First, so that no catch-up makes the node ready again once it
	// drains.
	s.readyMu.Lock()
	s.closing = true
	s.readyMu.Unlock()
	// A node that already left (a manager's carbon leave) has handed over
	// and said goodbye: only the servers remain to stop.
	gone := false
	select {
	case <-s.node.Done():
		gone = true
	default:
		if err := s.node.Drain(ctx); err != nil {
			errs = append(errs, fmt.Errorf("drain: %w", err))
		}
	}
	stopped := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		s.grpc.Stop()
		<-stopped
	}
	if err := s.http.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		s.http.Close()
	}
	s.served.Wait()
	s.stopBackground()
	if s.follow != nil {
		if err := s.follow.Leave(ctx); err != nil {
			errs = append(errs, fmt.Errorf("leave %s: %w", s.follow.Domain(), err))
		}
	}
	if !gone {
		if err := s.node.Leave(ctx); err != nil {
			errs = append(errs, fmt.Errorf("leave: %w", err))
		}
	}
	if err := s.hist.close(); err != nil {
		errs = append(errs, fmt.Errorf("history: %w", err))
	}
	return errors.Join(errs...)
}

// Kill stops at once, as a crash would: the node closes without leaving
// (peers declare it failed) and the servers drop their connections.
func (s *Server) Kill() {
	s.stopOnce.Do(func() {
		s.stopBackground()
		if s.node != nil {
			s.node.Close()
		}
		if s.follow != nil {
			s.follow.Close()
		}
		if s.grpc != nil {
			s.grpc.Stop()
		}
		if s.http != nil {
			s.http.Close()
		}
		s.served.Wait()
		s.hist.close()
	})
}

// stopBackground ends runSync and runWatch and drops idle peer
// connections.
func (s *Server) stopBackground() {
	s.quitOnce.Do(func() {
		close(s.quit)
		s.bg.Wait()
		s.peers.CloseIdleConnections()
	})
}

// onChange is the handler of the catalog's messages on a follower.
func (s *Server) onChange(remove bool) cluster.Handler {
	return func(m cluster.Message) {
		c, err := decodeChange(m.Payload, remove)
		if err != nil {
			s.log.Warn("catalog: bad message", "from", m.From, "err", err)
			return
		}
		out, done := s.store.offer(c)
		s.hist.apply(done)
		switch out {
		case stale:
			s.log.Warn("catalog: change refused", "from", m.From, "artifact", c.Name, "err",
				fmt.Errorf("%w: %d < %d", ErrStaleEpoch, c.Epoch, s.store.position().Epoch))
		case gap:
			s.kickSync()
		}
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func advertise(a net.Addr, host string) string {
	if host == "" {
		return a.String()
	}
	_, port, _ := net.SplitHostPort(a.String())
	return net.JoinHostPort(host, port)
}
