package nginx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// ErrPlusAPI is wrapped by the errors of a [PlusWriter] when the Nginx Plus
// API refuses a request or cannot be reached.
var ErrPlusAPI = errors.New("nginx: Nginx Plus API")

// PlusConfig configures a [PlusWriter].
type PlusConfig struct {
	// URL is the base of the Nginx Plus API, e.g. "http://127.0.0.1:8080/api".
	// Required.
	URL string
	// Version is the API version. Default 9.
	Version int
	// Client defaults to http.DefaultClient.
	Client *http.Client
}

// PlusWriter is the [Writer] for Nginx Plus: it changes the servers of each
// upstream through the Plus REST API (/api/N/http/upstreams/NAME/servers),
// without reloading Nginx. The upstreams must already be declared in the
// Nginx configuration with a shared memory zone ([UpstreamSpec.Zone]).
//
// # Untested against Nginx Plus
//
// Nginx Plus is commercial and cannot be run by this module's tests: the
// PlusWriter is tested only against a stand-in of the API built from its
// documentation. Treat it as a starting point.
//
// # Order of changes
//
// New servers are added first, changed weights patched next, and servers
// that left removed last, so an upstream is never empty in between. The
// API cannot flip "backup" on an existing server, so a stand-by that
// becomes the active manager is removed and added again. The changes of
// one Apply are not atomic: a failure part-way leaves some applied; the
// next Apply, which compares with what the API reports, completes them.
type PlusWriter struct {
	base   string
	client *http.Client
}

var _ Writer = (*PlusWriter)(nil)

// NewPlusWriter checks cfg. The error wraps [ErrConfig].
func NewPlusWriter(cfg PlusConfig) (*PlusWriter, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || cfg.URL == "" || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: PlusConfig.URL %q: want http(s)://host[:port]/api", ErrConfig, cfg.URL)
	}
	if cfg.Version == 0 {
		cfg.Version = 9
	}
	if cfg.Version < 1 {
		return nil, fmt.Errorf("%w: PlusConfig.Version %d", ErrConfig, cfg.Version)
	}
	if cfg.Client == nil {
		cfg.Client = http.DefaultClient
	}
	return &PlusWriter{base: fmt.Sprintf("%s/%d/http/upstreams/", strings.TrimRight(cfg.URL, "/"), cfg.Version), client: cfg.Client}, nil
}

// plusServer is a server as the Plus API reports and takes it.
type plusServer struct {
	ID     int    `json:"id,omitempty"`
	Server string `json:"server"`
	Weight int    `json:"weight,omitempty"`
	Backup bool   `json:"backup,omitempty"`
}

// Apply makes the servers of each upstream those of ups.
func (w *PlusWriter) Apply(ctx context.Context, ups []Upstream) error {
	var errs []error
	for _, u := range ups {
		if err := w.apply(ctx, u); err != nil {
			errs = append(errs, fmt.Errorf("upstream %s: %w", u.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (w *PlusWriter) apply(ctx context.Context, u Upstream) error {
	servers := w.base + url.PathEscape(u.Name) + "/servers"
	var have []plusServer
	if err := w.do(ctx, http.MethodGet, servers, nil, &have); err != nil {
		return err
	}
	byAddr := map[string]plusServer{}
	for _, s := range have {
		byAddr[s.Server] = s
	}
	want := map[string]bool{}
	var remove []int
	for _, s := range u.Servers {
		want[s.Addr] = true
		cur, ok := byAddr[s.Addr]
		if ok && cur.Backup != s.Backup {
			// backup cannot be patched: remove now, add below.
			if err := w.do(ctx, http.MethodDelete, fmt.Sprintf("%s/%d", servers, cur.ID), nil, nil); err != nil {
				return err
			}
			ok = false
		}
		switch {
		case !ok:
			if err := w.do(ctx, http.MethodPost, servers, plusServer{Server: s.Addr, Weight: s.Weight, Backup: s.Backup}, nil); err != nil {
				return err
			}
		case cur.Weight != s.Weight:
			if err := w.do(ctx, http.MethodPatch, fmt.Sprintf("%s/%d", servers, cur.ID), map[string]int{"weight": s.Weight}, nil); err != nil {
				return err
			}
		}
	}
	for _, s := range have {
		if !want[s.Server] {
			remove = append(remove, s.ID)
		}
	}
	for _, id := range remove {
		if err := w.do(ctx, http.MethodDelete, fmt.Sprintf("%s/%d", servers, id), nil, nil); err != nil {
			return err
		}
	}
	return nil
}

func (w *PlusWriter) do(ctx context.Context, method, u string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPlusAPI, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s %s: %v", ErrPlusAPI, method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%w: %s %s: %s: %s", ErrPlusAPI, method, u, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%w: %s %s: bad JSON: %v", ErrPlusAPI, method, u, err)
		}
	}
	return nil
}
