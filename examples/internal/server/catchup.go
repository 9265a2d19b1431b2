package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/role"
)

// How a node's catalog catches up with its domain.
//
// Changes travel by cluster message, best-effort gossip: a node that was
// down, or that lost a message, holds an older catalog. Each change carries
// its writer's epoch and a sequence number, so a follower knows when it
// misses one: a change that does not continue its history (see
// store.offer) waits, and if the gap is still open after syncGrace
// (gossip may reorder), the follower fetches a snapshot from the active
// manager (GET /api/catalog, a read any node serves) and adopts it. The
// same happens once at start, before the node reports ready: until then
// its reads answer 503 / Unavailable, its /readyz is 503 and it stays
// "starting" in the cluster, so balancers send it nothing (a worker that
// falls behind later drains while it catches up, for the same reason).
//
// A manager that becomes active catches up too, before it takes a write:
// it fetches the snapshots of every alive trusted member of its domain
// that serves the catalog (every alive manager of its sub-domain must
// answer) and adopts the newest, by epoch then sequence. A write the
// previous active acknowledged is on every stand-by manager (see
// Server.write), so the new active starts from a catalog that holds it,
// even if it missed the message itself (it was restarted meanwhile).

// syncGrace is how long a gap may stay open before a follower catches up
// from a snapshot: long enough for reordered gossip to fill it.
const syncGrace = 150 * time.Millisecond

// peerTimeout bounds one snapshot request to a peer.
const peerTimeout = time.Second

// fetchSnapshot asks a peer's HTTP endpoint for its catalog.
func (s *Server) fetchSnapshot(ctx context.Context, addr string) (Snapshot, error) {
	return s.fetch(ctx, addr, CatalogPath)
}

// fetchHead asks a peer for its position only.
func (s *Server) fetchHead(ctx context.Context, addr string) (Snapshot, error) {
	return s.fetch(ctx, addr, CatalogPath+"?artifacts=0")
}

func (s *Server) fetch(ctx context.Context, addr, path string) (Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, peerTimeout)
	defer cancel()
	var snap Snapshot
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return snap, err
	}
	resp, err := s.peers.Do(req)
	if err != nil {
		return snap, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return snap, fmt.Errorf("%s: %s", addr, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil {
		return snap, fmt.Errorf("%s: %w", addr, err)
	}
	return snap, nil
}

// nodes are the server's cluster nodes: its own and the followed one.
func (s *Server) nodes() []*cluster.Node {
	if s.follow != nil {
		return []*cluster.Node{s.node, s.follow}
	}
	return []*cluster.Node{s.node}
}

// activeSource returns the active manager a follower catches up from.
func (s *Server) activeSource() (cluster.Member, string, bool) {
	for _, n := range s.nodes() {
		sub := cluster.SubDomainManager
		if n.Role() == role.Manager {
			sub = n.SubDomain()
		}
		m, ok := n.Active(sub)
		if !ok || !m.Trusted() || (n == s.node && m.Name == s.node.Name()) {
			continue
		}
		if addr, ok := m.Endpoint("http"); ok {
			return m, addr, true
		}
	}
	return cluster.Member{}, "", false
}

// catalogPeers returns the alive trusted members that serve the catalog,
// other than this node.
func (s *Server) catalogPeers() []cluster.Member {
	var out []cluster.Member
	for _, n := range s.nodes() {
		for _, m := range n.View().Alive("") {
			if n == s.node && m.Name == s.node.Name() || !m.Trusted() {
				continue
			}
			if _, ok := m.Endpoint("http"); ok {
				out = append(out, m)
			}
		}
	}
	return out
}

// catchUp brings a follower's catalog up to the active manager's, or,
// with no active manager known, to the newest of its peers'. A node given
// seeds waits to see another member first: just after Join its view may
// hold only itself, and an empty catalog is no catch-up; with seeds it
// cannot reach it stays "starting". Only a node without seeds, which
// founds its domain, or a manager elected alone with Config.Bootstrap,
// starts from nothing.
func (s *Server) catchUp(ctx context.Context) error {
	if m, addr, ok := s.activeSource(); ok {
		snap, err := s.fetchSnapshot(ctx, addr)
		if err != nil {
			return fmt.Errorf("catch up from the active manager %s: %w", m.Name, err)
		}
		if !snap.Writable {
			return fmt.Errorf("catch up from the active manager %s: it is not taking writes yet", m.Name)
		}
		s.adopt(snap, true, m.Name)
		return nil
	}
	for _, n := range s.seeded {
		// A manager elected alone (Config.Bootstrap) holds the catalog
		// of its domain as far as anyone can know.
		if len(n.View().Alive("")) < 2 && !(n == s.node && s.node.Writable()) {
			return fmt.Errorf("%s has seeds and sees no member of %s yet", n.Name(), n.Domain())
		}
	}
	peers := s.catalogPeers()
	snaps, errs := s.fetchAll(ctx, peers)
	if len(peers) > 0 && len(snaps) == 0 {
		return fmt.Errorf("no active manager, and no peer answered: %w", errors.Join(errs...))
	}
	s.adoptNewest(snaps)
	return nil
}

// fetchAll fetches the snapshots of peers at once; it returns those that
// answered by name.
func (s *Server) fetchAll(ctx context.Context, peers []cluster.Member) (map[string]Snapshot, []error) {
	return s.fetchEach(ctx, peers, s.fetchSnapshot)
}

func (s *Server) fetchEach(ctx context.Context, peers []cluster.Member, fetch func(context.Context, string) (Snapshot, error)) (map[string]Snapshot, []error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	snaps := map[string]Snapshot{}
	var errs []error
	for _, m := range peers {
		addr, _ := m.Endpoint("http")
		wg.Go(func() {
			snap, err := fetch(ctx, addr)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", m.Name, err))
				return
			}
			snaps[m.Name] = snap
		})
	}
	wg.Wait()
	return snaps, errs
}

func (s *Server) adoptNewest(snaps map[string]Snapshot) {
	var best Snapshot
	from := ""
	for name, snap := range snaps {
		if from == "" || best.Position.Less(snap.Position) {
			best, from = snap, name
		}
	}
	if from != "" {
		s.adopt(best, false, from)
	}
}

func (s *Server) adopt(snap Snapshot, force bool, from string) {
	replaced, done := s.store.adopt(snap, force)
	if replaced {
		s.hist.catchUp(snap, from)
		s.log.Info("catalog: caught up", "from", from, "epoch", snap.Epoch, "seq", snap.Seq, "artifacts", len(snap.Artifacts))
	}
	s.hist.apply(done)
}

// runSync is the follower's catch-up loop: once at start, then whenever a
// gap stays open past syncGrace, or the active manager's position stays
// ahead of this node's past syncGrace (checked every checkEvery: the last
// change before a quiet spell may be the one lost, and nothing after it
// would show the gap). It retries until it succeeds. It is the one
// goroutine that calls Ready on the node after Start, and never once
// Shutdown has begun (readyMu, closing).
func (s *Server) runSync() {
	defer s.bg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-s.quit; cancel() }()
	check := time.NewTicker(checkEvery)
	defer check.Stop()
	first := true
	for {
		if !first {
			var head Position
			select {
			case <-s.quit:
				return
			case <-s.kick:
			case <-check.C:
				h, ok := s.activeHead(ctx)
				if !ok || !s.store.position().Less(h) {
					continue
				}
				head = h
			}
			if !s.pause(syncGrace) {
				return
			}
			if !s.store.behind() && !s.store.position().Less(head) {
				continue // gossip filled the gap
			}
			s.ready.Store(false)
		}
		// A worker that is behind leaves the balancers' rotation while it
		// catches up (draining), and comes back after (Ready). Not a
		// manager: a draining stand-by cannot take over.
		rejoin := !first && s.node.Role() == role.Worker
		if rejoin {
			dctx, cancel := context.WithTimeout(ctx, time.Second)
			if err := s.node.Drain(dctx); err != nil {
				s.log.Debug("catalog: out of rotation while catching up", "err", err)
			}
			cancel()
		}
		backoff := 50 * time.Millisecond
		var logged string
		var loggedAt time.Time
		for {
			err := s.catchUp(ctx)
			if err == nil {
				break
			}
			s.lastSyncErr.Store(err.Error())
			// The same reason at most every 10 s: a node whose seeds are
			// wrong retries for as long as it runs.
			if msg := err.Error(); msg != logged || time.Since(loggedAt) > 10*time.Second {
				s.log.Warn("catalog: catching up; not ready yet", "err", err)
				logged, loggedAt = msg, time.Now()
			}
			if !s.pause(backoff) {
				return
			}
			backoff = min(2*backoff, time.Second)
		}
		s.ready.Store(true)
		if rejoin {
			s.readyMu.Lock()
			if !s.closing {
				if err := s.node.Ready(ctx); err != nil {
					s.log.Warn("catalog: caught up, but not back in rotation", "err", err)
				}
			}
			s.readyMu.Unlock()
		}
		if first {
			close(s.caughtUp)
			first = false
		}
	}
}

// pause waits d; false if the server stops first.
func (s *Server) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.quit:
		return false
	case <-t.C:
		return true
	}
}

// checkEvery is how often a follower compares its position with the
// active manager's.
const checkEvery = 2 * time.Second

// activeHead returns the position of the active manager's catalog.
func (s *Server) activeHead(ctx context.Context) (Position, bool) {
	_, addr, ok := s.activeSource()
	if !ok {
		return Position{}, false
	}
	head, err := s.fetchHead(ctx, addr)
	return head.Position, err == nil && head.Writable
}

// kickSync asks runSync to look at a gap.
func (s *Server) kickSync() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// takeOver catches a manager that has just become active up with its
// peers; it holds s.wmu, so no write runs meanwhile.
func (s *Server) takeOver(ctx context.Context, epoch uint64) error {
	peers := s.catalogPeers()
	snaps, errs := s.fetchAll(ctx, peers)
	for _, m := range peers {
		if _, ok := snaps[m.Name]; !ok && m.Role == role.Manager && m.SubDomain == s.node.SubDomain() {
			return fmt.Errorf("catch up before taking writes at epoch %d: stand-by manager %s did not answer: %w", epoch, m.Name, errors.Join(errs...))
		}
	}
	s.adoptNewest(snaps)
	s.activeEpoch.Store(epoch)
	pos := s.store.position()
	s.log.Info("catalog: caught up; taking writes", "epoch", epoch, "at_epoch", pos.Epoch, "at_seq", pos.Seq, "peers", len(snaps))
	return nil
}

// runWatch samples the node's Writable every few milliseconds: it records
// each change in the history, and has a manager that has just become
// active catch up (takeOver) before it takes writes.
func (s *Server) runWatch() {
	defer s.bg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-s.quit; cancel() }()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	lastW, lastE := false, uint64(0)
	var nextTry time.Time
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
		case <-s.wakeWatch:
		}
		w := s.node.Writable()
		e := s.node.Epoch()
		if !w {
			e = 0
		}
		if w != lastW || e != lastE {
			s.hist.writable(w, e)
			lastW, lastE = w, e
		}
		if !w || s.activeEpoch.Load() == e || time.Now().Before(nextTry) {
			continue
		}
		s.wmu.Lock()
		var err error
		if s.activeEpoch.Load() != e && s.node.Epoch() == e {
			err = s.takeOver(ctx, e)
		}
		s.wmu.Unlock()
		if err != nil {
			s.log.Warn("catalog: not taking writes yet", "err", err)
			nextTry = time.Now().Add(100 * time.Millisecond)
		}
	}
}
