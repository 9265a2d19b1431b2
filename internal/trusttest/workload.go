package trusttest

import (
	"crypto/x509"
	"net"
	"path/filepath"
	"testing"

	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/carbonkit/carbon/trust"
)

// WorkloadAPI is a SPIFFE Workload API server on a unix socket, as a SPIRE
// agent serves it: FetchX509SVID streams each SVID pushed with Push.
type WorkloadAPI struct {
	workload.UnimplementedSpiffeWorkloadAPIServer
	// Addr is the socket's address for trust.FromWorkloadAPI, "unix://...".
	Addr    string
	updates chan *workload.X509SVIDResponse
}

// StartWorkloadAPI serves a WorkloadAPI until the test ends.
func StartWorkloadAPI(tb testing.TB) *WorkloadAPI {
	tb.Helper()
	sock := filepath.Join(tb.TempDir(), "agent.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		tb.Fatal(err)
	}
	w := &WorkloadAPI{Addr: "unix://" + sock, updates: make(chan *workload.X509SVIDResponse, 4)}
	srv := grpc.NewServer()
	workload.RegisterSpiffeWorkloadAPIServer(srv, w)
	go func() { _ = srv.Serve(lis) }()
	tb.Cleanup(srv.Stop)
	return w
}

// FetchX509SVID implements the Workload API method; it refuses a call
// without the security header, as SPIRE does.
func (w *WorkloadAPI) FetchX509SVID(_ *workload.X509SVIDRequest, st grpc.ServerStreamingServer[workload.X509SVIDResponse]) error {
	md, _ := metadata.FromIncomingContext(st.Context())
	if v := md.Get("workload.spiffe.io"); len(v) != 1 || v[0] != "true" {
		return status.Error(codes.InvalidArgument, "security header missing")
	}
	for {
		select {
		case <-st.Context().Done():
			return nil
		case r := <-w.updates:
			if err := st.Send(r); err != nil {
				return err
			}
		}
	}
}

// Push issues a certificate for id from ca and sends it, with ca's
// certificate as the bundle, as the workload's SVID.
func (w *WorkloadAPI) Push(tb testing.TB, ca *trust.CA, id trust.Identity, opts ...trust.IssueOption) *trust.Issued {
	tb.Helper()
	is, err := ca.Issue(id, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(is.Key)
	if err != nil {
		tb.Fatal(err)
	}
	sid, err := id.ID()
	if err != nil {
		tb.Fatal(err)
	}
	var chain []byte
	for _, c := range is.Chain {
		chain = append(chain, c.Raw...)
	}
	w.updates <- &workload.X509SVIDResponse{Svids: []*workload.X509SVID{{
		SpiffeId: sid.String(), X509Svid: chain, X509SvidKey: key, Bundle: ca.Certificate().Raw,
	}}}
	return is
}
