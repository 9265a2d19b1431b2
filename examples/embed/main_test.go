package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/internal/leakcheck"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leakcheck.Options()...)
}

// TestRun runs the guide's snippet: it joins, serves its status page, and
// leaves when its context ends.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	type up struct {
		node *cluster.Node
		addr string
	}
	ready := make(chan up, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, "embed.test", nil, io.Discard, func(n *cluster.Node, addr string) { ready <- up{n, addr} })
	}()
	var u up
	select {
	case u = <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("not serving after 20 s")
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + u.addr + "/status?format=json")
	if err != nil {
		t.Fatal(err)
	}
	var st cluster.StatusReport
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || len(st.Domains) != 1 || st.Domains[0].Domain != "embed.test" || st.Domains[0].SelfRole != "worker" {
		t.Fatalf("status: %v %+v", err, st)
	}
	resp, err = client.Get("http://" + u.addr + "/console")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/console on a worker: %d, want 404", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("leave: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("did not stop")
	}
	select {
	case <-u.node.Done():
	default:
		t.Error("node not stopped after run returned")
	}
}
