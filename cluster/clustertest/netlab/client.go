//go:build linux

package netlab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/carbonkit/carbon/cluster"
)

// client is the lab's HTTP client: it dials from the client host's
// namespace, and every request has its own short deadline, so a frozen or
// cut-off node costs one timeout, never a stuck client.
type client struct {
	http    *http.Client
	addr    func(node string) string // node -> "ip:port" of its HTTP API
	timeout time.Duration
}

func newClient(dial func(ctx context.Context, network, addr string) (net.Conn, error), addr func(string) string, timeout time.Duration) *client {
	tr := &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 4, IdleConnTimeout: 5 * time.Second}
	return &client{http: &http.Client{Transport: tr}, addr: addr, timeout: timeout}
}

func (c *client) close() { c.http.CloseIdleConnections() }

// do sends one request; status 0 with an error means no answer.
func (c *client) do(ctx context.Context, method, node, path string, body any, out any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.addr(node)+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("netlab: %s %s on %s: %w", method, path, node, err)
		}
	}
	return resp.StatusCode, nil
}

// write sends one write to one node and records it as an Op.
func (c *client) write(ctx context.Context, kind, node, key, value string) Op {
	op := Op{Kind: kind, Node: node, Key: key, Value: value, Invoke: time.Now()}
	var a struct {
		Epoch uint64 `json:"epoch"`
	}
	st, err := c.do(ctx, http.MethodPost, node, "/api/artifacts", map[string]string{"name": key, "version": value}, &a)
	op.Complete, op.Status = time.Now(), st
	switch {
	case err != nil && st == 0:
		op.Result, op.Err = Unknown, err.Error()
	case st/100 == 2:
		op.Result, op.Epoch = OK, a.Epoch
	case st/100 == 4:
		op.Result = Fail
	default:
		op.Result = Unknown
	}
	return op
}

type artifactList struct {
	Artifacts []struct {
		Name, Version string
	} `json:"artifacts"`
}

// catalog reads one node's catalog.
func (c *client) catalog(ctx context.Context, node string) (map[string]string, error) {
	var l artifactList
	st, err := c.do(ctx, http.MethodGet, node, "/api/artifacts", nil, &l)
	if err != nil {
		return nil, err
	}
	if st != http.StatusOK {
		return nil, fmt.Errorf("netlab: catalog of %s: HTTP %d", node, st)
	}
	m := make(map[string]string, len(l.Artifacts))
	for _, a := range l.Artifacts {
		m[a.Name] = a.Version
	}
	return m, nil
}

// status reads one node's views and whether it is writable.
func (c *client) status(ctx context.Context, node string) ([]View, bool, error) {
	var st cluster.StatusReport
	code, err := c.do(ctx, http.MethodGet, node, "/status?format=json", nil, &st)
	if err != nil {
		return nil, false, err
	}
	if code != http.StatusOK {
		return nil, false, fmt.Errorf("netlab: status of %s: HTTP %d", node, code)
	}
	var views []View
	writable := false
	for i, d := range st.Domains {
		if i == 0 {
			writable = d.Writable
		}
		v := View{Domain: d.Domain, Active: map[string]string{}}
		for _, sd := range d.SubDomains {
			if sd.Managers && sd.Active != "" {
				v.Active[sd.Name] = sd.Active
			}
			for _, m := range sd.Members {
				if m.Status == "alive" && !slices.Contains(v.Members, m.Name) {
					v.Members = append(v.Members, m.Name)
				}
			}
		}
		slices.Sort(v.Members)
		views = append(views, v)
	}
	return views, writable, nil
}

// snapshot is what every live node answered at one moment.
type snapshot struct {
	at     time.Time
	finals []Final
	errs   []error
}

// observe asks every node in nodes for its status (and catalog, when
// catalogs is set) in parallel.
func (c *client) observe(ctx context.Context, nodes []string, catalogs bool) snapshot {
	s := snapshot{at: time.Now(), finals: make([]Final, len(nodes))}
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			f := Final{Node: n}
			var err error
			if f.Views, f.Writable, err = c.status(ctx, n); err == nil && catalogs {
				f.Catalog, err = c.catalog(ctx, n)
			}
			f.Time = time.Now()
			s.finals[i], errs[i] = f, err
		})
	}
	wg.Wait()
	s.errs = slices.DeleteFunc(errs, func(e error) bool { return e == nil })
	return s
}

// oneView reports whether every node answered and all see the same live
// members in each domain, expected holds (domain -> the members that must be
// alive in it), and each domain with managers has one active.
func (s snapshot) oneView(expected map[string][]string) bool {
	if len(s.errs) > 0 {
		return false
	}
	byDomain := map[string]string{}
	for _, f := range s.finals {
		for _, v := range f.Views {
			d := describeView(v)
			if prev, ok := byDomain[v.Domain]; ok && prev != d {
				return false
			}
			byDomain[v.Domain] = d
			for _, m := range expected[v.Domain] {
				if !slices.Contains(v.Members, m) {
					return false
				}
			}
			if len(v.Members) != len(expected[v.Domain]) {
				return false
			}
		}
	}
	return true
}
