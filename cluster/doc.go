// Package cluster joins a Go server to a Carbon-style cluster: a domain
// (one serf gossip pool) split into sub-domains ("worker", "mgt"), where
// each member is a worker, a manager or an observer.
//
// # Joining
//
// [Join] validates a [Config] (passed by value; every zero field means a
// documented default), starts serf and joins the seeds, Carbon's
// well-known members. Seeds may be DNS names; they are resolved on every
// attempt. A node whose seeds are not up yet comes up alone and keeps
// retrying with backoff, so nodes may start in any order. A seed of another
// domain fails Join with [ErrForeignDomain], one with another gossip key
// with [ErrKeyMismatch]; members of another domain are never merged, even
// when gossip brings them (the domain tag is checked on every alive
// message, in place, without decoding the other tags).
//
// About a gossip interval after its join, and four more times further apart
// (the last 5 to 10 s after the join on LAN timings), a node exchanges its
// whole member list with another member (a memberlist push/pull): first
// with one of its seeds, which heard from every node that joined through
// it, then with random members. A node the domain knew as left or dead (a
// restart) also announces its join again each time (a serf join intent), so
// that a member still holding an older "left" for it after a quick restart
// does not keep it leaving; views re-read serf's status of a member they
// show leaving every probe interval, as serf sends no event when such a
// member turns alive again. When many nodes start at once, each learns from
// its seeds only the members that joined before it, and an alive message
// that runs out of retransmissions leaves a member unknown to some nodes
// until the periodic push/pull, 30 s to minutes away on LAN timings; these
// exchanges close the gap, and nodes started together through the same
// seeds all see each other after the first one. Gossip is not compressed on
// LAN and local timings (it costs CPU and saves bandwidth a LAN does not
// lack).
//
// # Seeds on Kubernetes
//
// A headless Service's name makes a good seed: it resolves to the pods'
// IPs (through [Config.Resolver], the system's resolver by default). A
// node that sees no other alive member looks the name up again on every
// retry, so it follows pods that come and go; a node with contact looks
// it up about every 10 s (LAN timings) and joins any address no member
// holds, so that groups formed apart while the Service listed only some
// pods merge.
// A pod restarted under the same name with a new IP is taken at its new
// address once its old one is declared dead: serf's vote on conflicting
// names is off (every member would vote for the dead address), and the
// restarted node keeps exchanging state while a member holds its name
// elsewhere. docs/KUBERNETES.md has manifests.
//
// A member advertises its domain, sub-domain, role, serving state,
// endpoints and properties in serf tags, encoded compactly because
// memberlist caps them at 512 bytes; Join refuses a Config whose tags do
// not fit ([ErrTagsTooLarge]). Bigger data travels by cluster message or
// on the member's own endpoints.
//
// # Views
//
// A Node drains serf's events in one goroutine of its own and publishes
// immutable, versioned [View] snapshots: [Node.View], [Node.Members] and
// [Node.Watch]. A watcher that reads slowly skips to the latest view; it
// never stalls gossip. A [Member] carries serf's liveness ([Status]) and
// its own [ServingState]: starting, serving or draining. Balancers send
// new work only to [Member.Routable] members.
//
// # Managers and the election
//
// In Active/Passive mode (the default) exactly one manager of a
// sub-domain is active and writable ([Node.Writable]); the others are
// read-only stand-bys. The choice is deterministic from the members a
// node sees and sticky: a live active stays active whoever joins (a
// joining manager claims nothing until its view holds every member its
// join brought). Each election raises an epoch, a fencing token
// ([Node.Epoch]) that writes and artifact revisions carry; two managers
// never hold the same epoch.
//
//   - Planned hand-over: [Node.Drain] or [Node.Leave] on the active
//     manager stops its writes at once, then waits until a stand-by has
//     claimed a higher epoch. There is no moment with two writers.
//   - Failover: when the active manager is declared failed, the stand-by
//     with the lowest name claims at once.
//   - Split brain: without a quorum, each side of a partition elects its
//     own active, under different epochs; when the partition heals, the
//     lower epoch steps down at once. With Config.Quorum set to the number
//     of managers, a side that sees fewer than a majority has no active
//     manager and is read-only. For two managers that is the trade-off in
//     plain words: without quorum, a partition may give two writers for
//     its duration, until the healed sides' views have merged (epochs tell
//     their writes apart, and the writes the lower epoch acknowledged are
//     refused by the others: they are lost); with quorum 2,
//     losing either manager, or the link between them, makes the
//     sub-domain read-only until both are back.
//
// # Write lease
//
// Fencing epochs protect the receivers of a write; the write lease
// protects its sender. An Active/Passive active manager is writable only
// while it holds a lease: acks, within the last lease length L, to pings
// it sent to the domain (with Config.Quorum, from a majority of its
// sub-domain's managers). L is SuspicionMult × ProbeInterval of the timing
// profile: 400 ms on ProfileLocal, 4 s on ProfileLAN, 30 s on ProfileWAN.
// The others declare it dead no sooner than ProbeTimeout + L after it last
// answered, and only then may a stand-by claim, so after a pause (GC,
// SIGSTOP, a stalled VM), an isolation or a stalled event loop the old
// active stops acknowledging writes at least ProbeTimeout before another
// may start. When its lease lapsed it renews only after a full state
// exchange with a peer shows no higher claim; otherwise it steps down. A
// manager whose seeds cannot be reached never elects itself unless
// Config.Bootstrap says it may start a domain alone.
//
// In Active/Active mode every live manager is writable. It is allowed, as
// in the Carbon guide, but not generally recommended: concurrent writers
// must reconcile their own changes.
//
// # Messages
//
// [Node.Broadcast] sends a small named payload (Carbon's
// ClusteringMessage, such as a cache invalidation) to every other member,
// at most once each; [Node.Handle] registers a [Handler]. Delivery is
// best-effort gossip, limited to [MaxMessageSize].
//
// # Lifecycle
//
// [Node.Drain] marks a node draining and returns once every alive member
// sees it so. [Node.Leave] leaves gracefully (peers mark the node left,
// not failed: from the start of its leave the node exchanges no state
// with them, since serf would pass its leave on as a join that makes them
// ignore the leave itself); [Node.Close] stops without leaving (peers
// mark the node failed). Both are idempotent and wait for
// every goroutine of the Node. [Node.Done] is closed when the node has
// stopped. With Config.SnapshotPath a restarted node rejoins the peers it
// knew.
//
// # Operating from another process
//
// [Node.DrainMember] and [Node.LeaveMember] ask another member to drain
// or leave; the member honours the request only from a manager, an
// observer with Role manager included (an operator's tool such as the
// carbon CLI), and, for now, not at all under a trust root, where the
// request would have to be signed ([ErrNotManager] otherwise).
// [Node.SetRevision] reports the artifact revision a node runs (package
// depsync calls it) as a tag, so every member sees each one's
// [Member.Revision]; the status page ([NewStatusHandler]) flags members
// behind their active manager's. [Node.Synced] waits until a node's view
// holds the domain, for tools that join, look and leave.
//
// # Timing and observability
//
// [ProfileLAN] (serf's defaults), [ProfileLocal] (fast: a crashed node is
// declared failed by all within about a second on loopback) and
// [ProfileWAN]. Logs go to log/slog, serf's and memberlist's included;
// metrics and spans go through the OpenTelemetry API (members by domain,
// sub-domain, role, status, state and trust; membership events;
// elections, the epoch and the active manager; members lagging the active
// manager's revision; spans around Join, Drain, Leave and each election).
//
// # What it does not promise
//
// Views are eventually consistent: two members may briefly disagree about
// a third. The election cannot prevent two writers on both sides of a
// partition unless a quorum is set; it makes them distinguishable by
// epoch and ends the overlap when the partition heals. Cluster messages
// are not persisted: a member that is down when one is sent misses it.
package cluster
