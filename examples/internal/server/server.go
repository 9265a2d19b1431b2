package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

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
	s = &Server{store: newStore(), log: log, grpcAddr: advertise(gl.Addr(), cfg.AdvertiseHost), httpAddr: advertise(hl.Addr(), cfg.AdvertiseHost)}
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
	logf := func(msg string, args ...any) { log.Warn(msg, args...) }
	for _, n := range []*cluster.Node{s.node} {
		if err := n.Handle(MsgDeploy, s.store.handler(false, logf)); err != nil {
			return nil, err
		}
		if err := n.Handle(MsgUndeploy, s.store.handler(true, logf)); err != nil {
			return nil, err
		}
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
		if err := s.follow.Handle(MsgDeploy, s.store.handler(false, logf)); err != nil {
			return nil, err
		}
		if err := s.follow.Handle(MsgUndeploy, s.store.handler(true, logf)); err != nil {
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
	return errors.Join(errs...)
}

// Kill stops at once, as a crash would: the node closes without leaving
// (peers declare it failed) and the servers drop their connections.
func (s *Server) Kill() {
	s.stopOnce.Do(func() {
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
	})
}

// write applies a change on the active manager under its epoch and
// broadcasts it. The Guard has already let the call through; the check is
// repeated because the node may have lost the active role since.
func (s *Server) write(ctx context.Context, c change, remove bool) (*pb.Artifact, error) {
	if err := s.guard.CheckWrite(ctx); err != nil {
		return nil, err
	}
	c.Epoch = s.node.Epoch()
	prev, had := s.store.get(c.Name)
	a, err := s.store.apply(c, remove)
	if err != nil {
		return nil, err
	}
	// Check again after applying and before anyone learns of the change:
	// a pause (GC, SIGSTOP) between the first check and here may have let
	// another manager take over. Then undo and tell the client to retry.
	if !s.node.Writable() || s.node.Epoch() != c.Epoch {
		s.store.restore(c.Name, prev, had)
		return nil, fmt.Errorf("%w: %q at epoch %d", ErrNotAcknowledged, c.Name, c.Epoch)
	}
	name := MsgDeploy
	if remove {
		name = MsgUndeploy
	}
	payload, _ := json.Marshal(c)
	if err := s.node.Broadcast(ctx, name, payload); err != nil {
		s.log.Warn("catalog: broadcast failed; peers miss this change", "artifact", c.Name, "err", err)
	}
	if a != nil {
		a.ServedBy = s.node.Name()
	}
	return a, nil
}

type catalog struct {
	pb.UnimplementedCatalogServer
	s *Server
}

func (c *catalog) ListArtifacts(ctx context.Context, _ *pb.ListArtifactsRequest) (*pb.ListArtifactsResponse, error) {
	return &pb.ListArtifactsResponse{Artifacts: c.s.store.list(), ServedBy: c.s.node.Name()}, nil
}

func (c *catalog) GetArtifact(ctx context.Context, r *pb.GetArtifactRequest) (*pb.Artifact, error) {
	a, ok := c.s.store.get(r.GetName())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no artifact %q on %s", r.GetName(), c.s.node.Name())
	}
	a.ServedBy = c.s.node.Name()
	return a, nil
}

func (c *catalog) DeployArtifact(ctx context.Context, r *pb.DeployArtifactRequest) (*pb.Artifact, error) {
	if r.GetName() == "" || r.GetVersion() == "" {
		return nil, status.Error(codes.InvalidArgument, "name and version are required")
	}
	a, err := c.s.write(ctx, change{Name: r.GetName(), Version: r.GetVersion()}, false)
	return a, grpcError(err)
}

func (c *catalog) UpdateArtifact(ctx context.Context, r *pb.UpdateArtifactRequest) (*pb.Artifact, error) {
	if r.GetName() == "" || r.GetVersion() == "" {
		return nil, status.Error(codes.InvalidArgument, "name and version are required")
	}
	if _, ok := c.s.store.get(r.GetName()); !ok {
		return nil, status.Errorf(codes.NotFound, "no artifact %q", r.GetName())
	}
	a, err := c.s.write(ctx, change{Name: r.GetName(), Version: r.GetVersion()}, false)
	return a, grpcError(err)
}

func (c *catalog) UndeployArtifact(ctx context.Context, r *pb.UndeployArtifactRequest) (*pb.UndeployArtifactResponse, error) {
	if _, err := c.s.write(ctx, change{Name: r.GetName()}, true); err != nil {
		return nil, grpcError(err)
	}
	return &pb.UndeployArtifactResponse{ServedBy: c.s.node.Name()}, nil
}

// grpcError maps store errors to status codes; a read-only rejection is
// returned as it is (grpc-go turns it into the Guard's status).
func grpcError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ErrStaleEpoch):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, ErrNotAcknowledged):
		return status.Error(codes.Unavailable, err.Error())
	}
	return err
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
