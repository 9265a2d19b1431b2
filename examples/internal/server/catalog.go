package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/carbonkit/carbon/examples/internal/catalogpb"
)

// catalog is the Catalog gRPC service. Every reply carries the catalog's
// position (EpochHeader, SeqHeader); reads on a node that is catching up,
// and writes the manager cannot acknowledge, answer Unavailable.
type catalog struct {
	pb.UnimplementedCatalogServer
	s *Server
}

// Headers of every catalog reply (gRPC response metadata, HTTP headers):
// the epoch and the sequence number of the catalog the reply reflects,
// and for a write, of the change it made.
const (
	EpochHeader = "carbon-catalog-epoch"
	SeqHeader   = "carbon-catalog-seq"
)

func setPosition(ctx context.Context, p Position) {
	_ = grpc.SetHeader(ctx, metadata.Pairs(EpochHeader, strconv.FormatUint(p.Epoch, 10), SeqHeader, strconv.FormatUint(p.Seq, 10)))
}

// readable is nil when the node may serve reads: it has caught up.
func (s *Server) readable() error {
	if !s.ready.Load() {
		return fmt.Errorf("%w: %s is behind its domain", ErrCatchingUp, s.node.Name())
	}
	return nil
}

func (c *catalog) ListArtifacts(ctx context.Context, _ *pb.ListArtifactsRequest) (*pb.ListArtifactsResponse, error) {
	if err := c.s.readable(); err != nil {
		return nil, grpcError(err)
	}
	list, at := c.s.store.list()
	setPosition(ctx, at)
	return &pb.ListArtifactsResponse{Artifacts: list, ServedBy: c.s.node.Name()}, nil
}

func (c *catalog) GetArtifact(ctx context.Context, r *pb.GetArtifactRequest) (*pb.Artifact, error) {
	if err := c.s.readable(); err != nil {
		return nil, grpcError(err)
	}
	a, at, ok := c.s.store.get(r.GetName())
	setPosition(ctx, at)
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
	a, ch, err := c.s.write(ctx, change{Name: r.GetName(), Version: r.GetVersion()})
	if err == nil {
		setPosition(ctx, ch.pos())
	}
	return a, grpcError(err)
}

func (c *catalog) UpdateArtifact(ctx context.Context, r *pb.UpdateArtifactRequest) (*pb.Artifact, error) {
	if r.GetName() == "" || r.GetVersion() == "" {
		return nil, status.Error(codes.InvalidArgument, "name and version are required")
	}
	if _, _, ok := c.s.store.get(r.GetName()); !ok {
		return nil, status.Errorf(codes.NotFound, "no artifact %q", r.GetName())
	}
	a, ch, err := c.s.write(ctx, change{Name: r.GetName(), Version: r.GetVersion()})
	if err == nil {
		setPosition(ctx, ch.pos())
	}
	return a, grpcError(err)
}

func (c *catalog) UndeployArtifact(ctx context.Context, r *pb.UndeployArtifactRequest) (*pb.UndeployArtifactResponse, error) {
	_, ch, err := c.s.write(ctx, change{Name: r.GetName(), Remove: true})
	if err != nil {
		return nil, grpcError(err)
	}
	setPosition(ctx, ch.pos())
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
	case errors.Is(err, ErrNotAcknowledged), errors.Is(err, ErrCatchingUp):
		return status.Error(codes.Unavailable, err.Error())
	}
	return err
}
