package cluster

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"net"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/carbonkit/carbon/internal/logbridge"
	"github.com/carbonkit/carbon/internal/tags"
	"github.com/carbonkit/carbon/role"
	"github.com/carbonkit/carbon/trust"
)

// Join starts a Node in cfg.Domain and joins the seeds. It validates cfg
// first and returns an error wrapping [ErrInvalidConfig] that names the
// field when it is wrong; nothing is started then. If no seed can be
// reached, the node comes up alone and keeps retrying in the background
// with backoff; a seed of another domain fails Join with
// [ErrForeignDomain]. ctx bounds the first join attempt only.
func Join(ctx context.Context, cfg Config) (*Node, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	n := &Node{
		origin:   time.Now(),
		cfg:      cfg,
		log:      cfg.Logger.With("domain", cfg.Domain, "node", cfg.NodeName),
		events:   make(chan serf.Event, 4096),
		recheck:  make(chan []serf.Member, 1),
		catchUp:  make(chan []string, 1),
		ls:       newLoopState(cfg.NodeName),
		kick:     make(chan struct{}, 1),
		tagCh:    make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		watchers: map[chan *View]struct{}{},
	}
	n.obs = newObservability(n)
	ctx, span := n.obs.tracer.Start(ctx, "cluster.Join", trace.WithAttributes(
		attribute.String("carbon.domain", cfg.Domain), attribute.String("carbon.subdomain", cfg.SubDomain),
		attribute.String("carbon.role", cfg.Role.String())))
	defer span.End()
	if err := n.start(ctx); err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return nil, err
	}
	return n, nil
}

func (n *Node) start(ctx context.Context) error {
	cfg := &n.cfg
	sc := serfConfig(cfg.Profile)
	sc.NodeName = cfg.NodeName
	sc.EventCh = n.events
	sc.Logger = logbridge.New(n.log, "serf")
	sc.MemberlistConfig.Logger = logbridge.New(n.log, "memberlist")
	sc.LogOutput, sc.MemberlistConfig.LogOutput = nil, nil
	sc.MemberlistConfig.Name = cfg.NodeName
	sc.SnapshotPath = cfg.SnapshotPath
	sc.RejoinAfterLeave = true
	sc.UserEventSizeLimit = MaxMessageSize + 128
	// Not sc.Merge: serf would then replace these two with its own.
	filter := &domainFilter{n: n}
	sc.MemberlistConfig.Merge, sc.MemberlistConfig.Alive = filter, filter
	// No serf vote on a name claimed from two addresses: members answer
	// with the address they hold, which after a crash is the dead one's,
	// so a pod restarted with a new IP would lose and its serf shut down.
	// The new address is taken once the old is declared dead (memberlist's
	// DeadNodeReclaimTime, internal/timing).
	sc.EnableNameConflictResolution = false
	n.recheckEvery = sc.MemberlistConfig.ProbeInterval

	bindHost, bindPort, _ := splitAddr(cfg.BindAddr, DefaultPort)
	ml := sc.MemberlistConfig
	ml.BindAddr, ml.BindPort = bindHost, bindPort
	ml.AdvertiseAddr, ml.AdvertisePort = "", bindPort
	var tr memberlist.Transport
	if cfg.Transport != nil {
		tr = cfg.Transport
		if ps, ok := cfg.Transport.(interface{ PacketSize() int }); ok && ps.PacketSize() > 0 {
			ml.UDPBufferSize = min(ps.PacketSize(), MaxGossipPacket)
		}
	} else {
		// Built here rather than by memberlist, to be wrapped below; with
		// port 0 the OS picks one and memberlist is told which.
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{bindHost}, BindPort: bindPort, Logger: ml.Logger,
		})
		if err != nil {
			return fmt.Errorf("cluster: BindAddr %q: %w", cfg.BindAddr, err)
		}
		tr = nt
		ml.BindPort, ml.AdvertisePort = nt.GetAutoBindPort(), nt.GetAutoBindPort()
	}
	guard := newLeaveGuard(tr, n.quitting.Load)
	ml.Transport = guard
	defer func() {
		switch {
		case n.serf != nil:
		case cfg.Transport == nil:
			guard.Shutdown()
		default:
			guard.release() // the caller's transport stays theirs
		}
	}()
	if cfg.AdvertiseAddr != "" {
		ml.AdvertiseAddr, ml.AdvertisePort, _ = splitAddr(cfg.AdvertiseAddr, DefaultPort)
	} else if bindHost != "0.0.0.0" && bindHost != "::" {
		ml.AdvertiseAddr = bindHost
	}
	if len(cfg.Key) > 0 {
		kr, err := memberlist.NewKeyring(nil, cfg.Key)
		if err != nil {
			return fmt.Errorf("%w: Key: %v", ErrInvalidConfig, err)
		}
		sc.MemberlistConfig.Keyring = kr
		sc.MemberlistConfig.GossipVerifyIncoming = true
		sc.MemberlistConfig.GossipVerifyOutgoing = true
	}

	if cfg.Trust != nil {
		addr := cfg.IdentityAddr
		if addr == "" {
			addr = net.JoinHostPort(bindHost, "0")
		}
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("cluster: IdentityAddr %q: %w", addr, err)
		}
		n.ver = newVerifier(n, lis)
		defer func() {
			if n.serf == nil {
				n.ver.srv.Close()
			}
		}()
	} else if !cfg.Observer {
		n.log.Warn("no trust root (Config.Trust): roles are self-asserted, and anyone holding the gossip key can make itself the active manager")
	}

	// Tags are checked before serf starts so the error names our fields.
	n.advHost = ml.AdvertiseAddr
	// Without DeferServing the node is serving from its first gossip: no
	// extra tag broadcast right after the join.
	n.state = Serving
	if cfg.DeferServing {
		n.state = Starting
	}
	t := n.tagsLocked()
	size := tags.Size(withClaimRoom(t, cfg))
	if size > tags.MaxSize {
		return fmt.Errorf("%w: Endpoints and Properties encode to %d bytes with the other tags, over memberlist's %d-byte limit (endpoints %d bytes, properties %d bytes); carry big data in a cluster message or an endpoint",
			ErrTagsTooLarge, size, tags.MaxSize, len(t[tags.KeyEndpoints]), len(t[tags.KeyProps]))
	}
	sc.Tags = t

	s, err := serf.Create(sc)
	if err != nil {
		return fmt.Errorf("cluster: start serf on %s: %w", cfg.BindAddr, err)
	}
	n.serf = s
	local := s.LocalMember()
	n.advHost, n.advPort = local.Addr.String(), int(local.Port)
	n.msgs = newMessenger(n)
	n.obs.register()

	if cfg.Role == role.Manager && !cfg.Observer && cfg.ManagerMode == ActivePassive {
		n.lease = newLease(n, sc.MemberlistConfig)
	}
	n.wg.Add(3)
	go n.loop()
	go n.tagger()
	go n.msgs.run()
	if n.ver != nil {
		n.wg.Add(1)
		go n.ver.run()
	}
	if n.lease != nil {
		n.wg.Add(1)
		go n.lease.run()
	}

	n.mu.Lock()
	n.maySince = time.Now().Add(cfg.ElectionDelay)
	n.mu.Unlock()
	var seeds []string // the seeds' addresses this node joined through
	if len(cfg.Seeds) == 0 {
		n.contacted()
	} else if seeds, err = n.joinSeeds(ctx); err != nil {
		if rej := n.rejection.Load(); rej != nil {
			n.Close()
			return fmt.Errorf("%w: a seed of %v belongs to domain %q, this node to domain %q", ErrForeignDomain, cfg.Seeds, *rej, cfg.Domain)
		}
		if isKeyError(err) {
			n.Close()
			return fmt.Errorf("%w: seeds %v refused this node's gossip (check Config.Key): %v", ErrKeyMismatch, cfg.Seeds, err)
		}
		n.log.Warn("no seed reachable yet; running alone and retrying", "seeds", cfg.Seeds, "err", err)
	}
	joined := n.phase.load().contacted() && len(cfg.Seeds) > 0
	n.phase.advance(evAttemptOver)
	if len(cfg.Seeds) > 0 {
		n.wg.Add(1)
		go n.retryJoin()
	}
	if joined {
		n.wg.Add(1)
		go n.syncAfterJoin(sc.MemberlistConfig.GossipInterval, seeds)
	}
	n.poke()
	return nil
}

// isKeyError recognises memberlist's errors for a keyring mismatch.
func isKeyError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "no installed keys could decrypt") ||
		strings.Contains(s, "encryption is not configured") ||
		strings.Contains(s, "remote state is not encrypted")
}

// withClaimRoom returns t with the largest claim tags a manager adds later:
// the epoch and, with trust, the signed claim (an ECDSA P-256 signature
// is up to 72 bytes, ed25519's 64) and its secret, so that Join refuses
// Endpoints and Properties that would leave no room for them.
func withClaimRoom(t map[string]string, cfg *Config) map[string]string {
	if cfg.Role != role.Manager || cfg.Observer {
		return t
	}
	t = maps.Clone(t)
	top := uint64(MaxEpochRound)<<epochDiscBits | (1<<epochDiscBits - 1)
	t[tags.KeyClaim] = tags.EncodeEpoch(top)
	if cfg.Trust != nil {
		t[tags.KeyClaimSig] = tags.EncodeSignedClaim(top, make([]byte, trust.SealSize), make([]byte, 72))
		t[tags.KeyClaimKey] = base64.RawStdEncoding.EncodeToString(make([]byte, trust.SecretSize))
	}
	return t
}
