package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/internal/trusttest"
	"github.com/carbonkit/carbon/role"
	"github.com/carbonkit/carbon/trust"
)

// TestTrustedManagerHTTPTakesNoWrites: with a trust root the example
// manager's plain-HTTP API answers reads and refuses a write with 403
// WRITER_NOT_AUTHORIZED (no client certificate can reach it), as
// docs/GUIDE.md says; without one the same write is accepted.
func TestTrustedManagerHTTPTakesNoWrites(t *testing.T) {
	for _, withTrust := range []bool{false, true} {
		cfg := cluster.Config{Domain: "trusted.test", Role: role.Manager, NodeName: "m1", BindAddr: "127.0.0.1:0",
			Profile: cluster.ProfileLocal, Logger: slog.New(slog.DiscardHandler)}
		if withTrust {
			cfg.Trust = trusttest.Member(t, trusttest.CA(t, "trusted.test"), cluster.SubDomainManager, trust.RoleManager, "m1")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		s, err := Start(ctx, Config{Cluster: cfg})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Kill)
		base := "http://" + s.HTTPAddr()
		if code, _ := call(t, http.MethodGet, base+"/api/artifacts", ""); code != http.StatusOK {
			t.Errorf("trust=%v: read answered %d, want 200", withTrust, code)
		}
		// A manager that just became active answers 503 until it has
		// caught up with its peers: wait that out.
		var code int
		var body string
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, body = call(t, http.MethodPost, base+"/api/artifacts", `{"name":"a","version":"1"}`)
			if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		switch {
		case withTrust && (code != http.StatusForbidden || !strings.Contains(body, role.ReasonWriterNotAuthorized)):
			t.Errorf("trust on: write answered %d %s, want 403 %s", code, body, role.ReasonWriterNotAuthorized)
		case !withTrust && code != http.StatusCreated:
			t.Errorf("trust off: write answered %d %s, want 201", code, body)
		}
	}
}

func call(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
