package cluster

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/carbonkit/carbon/role"
	"github.com/carbonkit/carbon/trust"
)

// TrustState says whether a member's role is backed by a certificate.
type TrustState int

const (
	// TrustOff: this node has no trust root; roles are self-asserted.
	TrustOff TrustState = iota
	// TrustVerified: the member proved a certificate, issued by the
	// domain's CA, naming its domain, sub-domain, role and name.
	TrustVerified
	// TrustUnverified: the member has not (yet) proven such a certificate.
	// It is shown in views but never elected, counted toward quorum or
	// routed to.
	TrustUnverified
)

// String returns "off", "verified" or "unverified".
func (t TrustState) String() string {
	switch t {
	case TrustVerified:
		return "verified"
	case TrustUnverified:
		return "unverified"
	}
	return "off"
}

// Timing of proofs: one proof waits at most proofTimeout; a failed one is
// retried with backoff from proofRetry to proofRetryMax while the member's
// tags stay the same; a good one is redone after reproveEvery, or when the
// certificate expires if sooner, so revoked or expired members lose trust.
const (
	proofTimeout  = 3 * time.Second
	proofRetry    = 250 * time.Millisecond
	proofRetryMax = 30 * time.Second
	reproveEvery  = 10 * time.Minute
	proofWorkers  = 4
	selfCheck     = 500 * time.Millisecond
)

// identityRole is the role a member's certificate must name. An observer
// with Role manager acts for the managers (an operator's tool), so its
// certificate must say manager.
func identityRole(m *Member) string {
	switch {
	case m.Observer && m.Role != role.Manager:
		return trust.RoleObserver
	case m.Role == role.Manager:
		return trust.RoleManager
	}
	return trust.RoleWorker
}

// checkTrust validates Trust against the rest of the config and defaults
// NodeName to the certificate's name.
func (c *Config) checkTrust() error {
	if c.Trust == nil {
		return nil
	}
	id := c.Trust.Identity()
	if err := c.Trust.Valid(time.Now()); err != nil {
		return configError("Trust", "%v", err)
	}
	want := trust.RoleWorker
	switch {
	case c.Observer && c.Role != role.Manager:
		want = trust.RoleObserver
	case c.Role == role.Manager:
		want = trust.RoleManager
	}
	switch {
	case id.Domain != c.Domain:
		return configError("Trust", "the certificate %s is for domain %q, the node joins %q", id, id.Domain, c.Domain)
	case id.Role != want:
		return configError("Trust", "the certificate %s grants role %q, the node is configured as %q", id, id.Role, want)
	case !c.Observer && id.SubDomain != c.SubDomain:
		return configError("Trust", "the certificate %s is for sub-domain %q, the node is in %q", id, id.SubDomain, c.SubDomain)
	case c.NodeName != "" && c.NodeName != id.Name:
		return configError("NodeName", "%q, but the certificate %s names %q", c.NodeName, id, id.Name)
	}
	if c.Observer {
		c.SubDomain = id.SubDomain
	}
	c.NodeName = id.Name
	if c.IdentityAddr != "" {
		if _, _, err := net.SplitHostPort(c.IdentityAddr); err != nil {
			return configError("IdentityAddr", "%q is not host:port: %v", c.IdentityAddr, err)
		}
	}
	return nil
}

// proofKey is what a proof is valid for: the identity the member's tags
// claim, at the address its tags give.
type proofKey struct {
	expect trust.Identity
	addr   string
}

// verdict is the outcome of one proof.
type verdict struct {
	name     string
	key      proofKey
	pub      crypto.PublicKey
	notAfter time.Time
	err      error
	claim    checkedClaim // the member's last signed claim that verified with pub
}

// verifier proves members' identities off the event loop: the loop asks
// (want), proofs run on a few goroutines, and their verdicts come back to
// the loop, which alone reads and writes verdicts and accepted.
type verifier struct {
	n   *Node
	src *trust.Source
	srv *trust.IdentityServer

	mu      sync.Mutex
	pending map[string]proofKey // name -> latest key asked for, not yet running
	running map[string]proofKey
	wake    chan struct{}
	results chan verdict

	// loop-owned
	verdicts  map[string]verdict
	accepted  map[string]uint64 // the last claim epoch accepted from each member
	badClaims map[string]string // the last signed claim of each member that did not verify
	retries   map[string]time.Duration
	nonces    map[[16]byte]time.Time // control requests seen, until they expire
}

func newVerifier(n *Node, lis net.Listener) *verifier {
	return &verifier{
		n: n, src: n.cfg.Trust, srv: trust.ServeIdentity(lis, n.cfg.Trust),
		pending: map[string]proofKey{}, running: map[string]proofKey{},
		wake: make(chan struct{}, 1), results: make(chan verdict, 64),
		verdicts: map[string]verdict{}, accepted: map[string]uint64{}, badClaims: map[string]string{},
		retries: map[string]time.Duration{},
		nonces:  map[[16]byte]time.Time{},
	}
}

// port is the identity endpoint's port, for the tags.
func (v *verifier) port() int { return v.srv.Addr().(*net.TCPAddr).Port }

// ask queues a proof of name under key unless one for key is queued or
// running. Loop only.
func (v *verifier) ask(name string, key proofKey) {
	v.mu.Lock()
	if v.running[name] == key || v.pending[name] == key {
		v.mu.Unlock()
		return
	}
	v.pending[name] = key
	v.mu.Unlock()
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// run hands queued proofs to up to proofWorkers goroutines, and checks
// the node's own certificate: a reload re-signs the claim, an expiry
// demotes the node.
func (v *verifier) run() {
	defer v.n.wg.Done()
	sem := make(chan struct{}, proofWorkers)
	tick := time.NewTicker(selfCheck)
	defer tick.Stop()
	gen := v.src.Generation()
	valid := v.src.Valid(time.Now()) == nil
	for {
		select {
		case <-v.n.stop:
			return
		case <-tick.C:
			if _, err := v.src.Reload(); err != nil {
				v.n.log.Warn("trust: cannot reload the certificate files; keeping the current ones", "err", err)
			}
			if g := v.src.Generation(); g != gen {
				gen = g
				v.n.log.Info("trust: certificate reloaded", "identity", v.src.Identity().String(), "not_after", v.src.Leaf().NotAfter)
				v.n.pushTags()
				select {
				case v.results <- verdict{err: errReproveAll}:
				case <-v.n.stop:
					return
				}
			}
			err := v.src.Valid(time.Now())
			if (err == nil) != valid {
				valid = err == nil
				if err != nil {
					v.n.log.Error("trust: this node's certificate is not valid; it is no longer counted as its role (a manager stops writing)", "err", err)
				} else {
					v.n.log.Info("trust: this node's certificate is valid again", "identity", v.src.Identity().String())
				}
				v.n.poke()
			}
			continue
		case <-v.wake:
		}
		for {
			v.mu.Lock()
			var name string
			var key proofKey
			for name, key = range v.pending {
				break
			}
			if name == "" {
				v.mu.Unlock()
				break
			}
			delete(v.pending, name)
			v.running[name] = key
			v.mu.Unlock()
			select {
			case sem <- struct{}{}:
			case <-v.n.stop:
				return
			}
			v.n.wg.Add(1)
			go func() {
				defer v.n.wg.Done()
				defer func() { <-sem }()
				out := v.prove(name, key)
				v.mu.Lock()
				if v.running[name] == key {
					delete(v.running, name)
				}
				v.mu.Unlock()
				select {
				case v.results <- out:
				case <-v.n.stop:
				}
			}()
		}
	}
}

func (v *verifier) prove(name string, key proofKey) verdict {
	ctx, cancel := context.WithTimeout(context.Background(), proofTimeout)
	defer cancel()
	go func() {
		select {
		case <-v.n.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	out := verdict{name: name, key: key}
	id, leaf, err := trust.Verify(ctx, key.addr, v.src)
	switch {
	case err != nil:
		out.err = err
	case id != key.expect:
		out.err = fmt.Errorf("proved %s, its tags claim %s", id, key.expect)
	default:
		out.pub, out.notAfter = leaf.PublicKey, leaf.NotAfter
	}
	return out
}

// keyOf is the proof m's tags call for; ok is false when the tags give no
// identity endpoint.
func (v *verifier) keyOf(m *Member) (proofKey, bool) {
	host, _, err := net.SplitHostPort(m.Addr)
	if err != nil || m.identPort == 0 {
		return proofKey{}, false
	}
	return proofKey{
		expect: trust.Identity{Domain: m.Domain, SubDomain: m.SubDomain, Role: identityRole(m), Name: m.Name},
		addr:   net.JoinHostPort(host, strconv.Itoa(m.identPort)),
	}, true
}

// annotate sets m.Trust and m.Claim from the verdicts, asking for the
// proofs it lacks. Loop only.
func (v *verifier) annotate(m *Member) {
	m.Trust, m.Claim, m.refused = TrustUnverified, 0, false
	key, ok := v.keyOf(m)
	if !ok {
		return
	}
	vd, have := v.verdicts[m.Name]
	if !have || vd.key != key {
		v.ask(m.Name, key)
		return
	}
	if vd.err != nil || !time.Now().Before(vd.notAfter) {
		m.refused = true
		return
	}
	m.Trust = TrustVerified
	v.annotateClaim(m, vd)
}

// undecided reports whether a member that says it is a live manager of
// sub has no verdict for what its tags claim yet. A manager does not start
// a claim meanwhile: the member may be the verified active whose claim it
// cannot read yet. Loop only.
func (v *verifier) undecided(sub string) bool {
	for name, m := range v.n.ls.members {
		if m.Role != role.Manager || m.Observer || m.SubDomain != sub || m.Status != StatusAlive {
			continue
		}
		key, ok := v.keyOf(m)
		if !ok {
			continue // no identity endpoint: it can never be verified
		}
		if vd, have := v.verdicts[name]; !have || vd.key != key {
			return true
		}
	}
	return false
}

// accept takes a verdict into the loop and re-annotates its member.
func (v *verifier) accept(vd verdict) {
	n := v.n
	if vd.err == errReproveAll {
		v.reproveAll()
		return
	}
	old, ok := n.ls.members[vd.name]
	if !ok {
		return
	}
	if key, ok := v.keyOf(old); !ok || key != vd.key {
		return // the member changed since; a newer proof is on its way
	}
	if vd.err == errReprove {
		v.ask(vd.name, vd.key)
		return
	}
	if prev, ok := v.verdicts[vd.name]; ok && vd.err != nil && prev.err == nil && prev.key == vd.key && time.Now().Before(prev.notAfter) {
		// A proof that worked for this very certificate failed now (its
		// endpoint is slow or briefly down): keep the member's trust, which
		// its certificate's expiry still bounds, and try again.
		n.log.Warn("trust: re-proof failed; keeping the earlier proof until it expires", "member", vd.name, "err", vd.err)
		v.later(vd.name, vd.key, proofRetry)
		return
	}
	v.verdicts[vd.name] = vd
	if vd.err != nil {
		wait := v.retries[vd.name]
		if wait == 0 {
			wait = proofRetry
			n.log.Warn("trust: member not verified; not counted as its role", "member", vd.name, "claims", vd.key.expect.String(), "err", vd.err)
		}
		v.retries[vd.name] = min(2*wait, proofRetryMax)
		v.later(vd.name, vd.key, wait)
	} else {
		delete(v.retries, vd.name)
		v.later(vd.name, vd.key, min(reproveEvery, time.Until(vd.notAfter)+time.Millisecond))
	}
	cp := *old
	v.annotate(&cp)
	if !cp.equal(old) {
		n.ls.members[vd.name] = &cp
		n.ls.dirty = true
	}
}

// later asks again for a proof after d, from the loop (through a kick).
func (v *verifier) later(name string, key proofKey, d time.Duration) {
	time.AfterFunc(d, func() {
		select {
		case <-v.n.stop:
		case v.results <- verdict{name: name, key: key, err: errReprove}:
		}
	})
}

// errReprove marks a verdict that is a request to prove again (from later):
// a timer cannot call ask, which is the loop's.
var errReprove, errReproveAll = errors.New("reprove"), errors.New("reprove all")

// reproveAll asks for a new proof of every member, keeping the current
// verdicts until they come: the node's CA bundle changed. Loop only.
func (v *verifier) reproveAll() {
	for name, m := range v.n.ls.members {
		if key, ok := v.keyOf(m); ok {
			if vd, have := v.verdicts[name]; have && vd.key == key {
				v.mu.Lock()
				v.pending[name] = key
				v.mu.Unlock()
			}
		}
	}
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// forget drops what the loop knows of a reaped member.
func (v *verifier) forget(name string) {
	delete(v.verdicts, name)
	delete(v.accepted, name)
	delete(v.badClaims, name)
	delete(v.retries, name)
}

// selfTrust is the node's own trust state: verified while its certificate
// is valid.
func (n *Node) selfTrust() TrustState {
	if n.cfg.Trust == nil {
		return TrustOff
	}
	if n.cfg.Trust.Valid(time.Now()) != nil {
		return TrustUnverified
	}
	return TrustVerified
}

// TrustSource returns the Node's trust root and certificate, nil without
// one: what lb.Dial and servers use for mutual TLS with peers.
func (n *Node) TrustSource() *trust.Source { return n.cfg.Trust }
