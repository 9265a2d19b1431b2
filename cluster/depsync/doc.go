// Package depsync is the deployment synchronizer: it carries artifacts from
// the active manager of a domain to every other node, and keeps each
// node's deployment folder equal to the manager's latest revision.
//
// Managers deploy and configure artifacts; workers only load them. The
// active manager publishes a folder as a revision ([Syncer.Publish]); the
// other nodes follow it on their own, fetch what they lack, verify it,
// switch their deployment folder atomically and call the application's
// deploy hook ([Options.Deploy]).
//
// # Revisions
//
// A revision is a manifest of regular files (path, mode, size, SHA-256),
// its root hash (the SHA-256 of the manifest), and its place in the
// revision line: the publishing manager's election epoch ([cluster.Node.Epoch],
// a fencing token) and a sequence number that grows by one per publish,
// across failovers too. Revisions are ordered by (epoch, seq). Publishing
// copies every file into a content-addressed blob store while hashing it:
// the revision is a snapshot, and edits of the folder during a transfer
// cannot tear it. Only the active manager publishes ([ErrNotActive]
// elsewhere); a manager whose epoch is older than the newest revision it
// knows is fenced ([ErrFenced]). Empty directories are not part of a
// revision.
//
// # Following
//
// Every node that is not the active manager follows it: the manager
// broadcasts a cluster message ([MessageName]) when it publishes, and
// followers also ask the active manager for its latest revision (the gRPC
// method Latest) every [Options.PollInterval] and whenever the active
// manager changes, so a node that joins late or missed the message catches
// up. A follower fetches the manifest from the active manager, then only
// the blobs it lacks, in chunks (bounded memory), many small blobs with one
// call, verifying size and hash of each before it enters the store.
//
// Followers fetch from each other: the alive members with a DepSync
// endpoint, sorted by name, form a tree of degree [Options.FanOut] under the
// manager, and each fetches a blob from its parent, falling back to the
// manager when the parent fails or does not get the blob within
// [Options.PeerWait]. A parent asked for a revision it does not have yet
// starts fetching it. The manager thus sends each blob about once,
// whatever the number of followers.
//
// The service ([Syncer.Register]) has four methods, all reads annotated
// idempotency_level = NO_SIDE_EFFECTS, so role's Guard lets them through on
// read-only workers: Latest, Manifest, and the server streams Blob (one
// blob) and Blobs (several, one after another). A follower asks a node that
// lacks Blobs (an earlier version) for one blob at a time.
//
// # The folder
//
// [Options.Dir] belongs to the synchronizer; nothing else may write it,
// and it must be one file system. Blobs live in blobs/, revisions are built
// as trees in tmp/ and renamed into revisions/<epoch>-<seq>/ (hard links to
// the blobs, copies for files whose mode is not 0644; a follower writes a
// fetched 0644 file straight into its place in the tree and links it into
// blobs/ once its hash is verified), and the deployment folder the
// application reads is the current symlink ([Syncer.Dir]), switched by
// renaming a new symlink over it. The last [Options.Keep] revisions are
// kept. On start, the current tree is checked against its manifest (paths,
// sizes, modes) and rebuilt if it differs, so the folder is reconciled to
// the manifest exactly. Because tree files may be hard links into the blob
// store, the application must treat the tree as read-only.
//
// # What is promised
//
//   - A revision never goes backwards: a follower refuses a revision older
//     than its current one ([ErrFenced]).
//   - Bad input is refused with an error that names it, before anything
//     changes in the deployment folder or the revision line: unsafe paths
//     ([ErrUnsafePath]), symlinks and special files ([ErrNotRegular]),
//     duplicates ([ErrDuplicatePath]), malformed hashes or a wrong root
//     ([ErrBadHash]), blobs that do not match ([ErrHashMismatch]), files and
//     totals over the limits ([ErrTooLarge]). Verified blobs fetched before
//     the error stay in the store, as a cache.
//   - A revision a node reports as current ([Syncer.Current], the deploy
//     hook) survives a crash: before the current symlink is switched, the
//     file system holding the folder is flushed once (syncfs(2) on Linux;
//     an fsync of each file elsewhere), so the tree, its blobs and its
//     manifest are on disk, and the switch itself is flushed before the
//     revision is reported. A blob not yet part of a switched revision may
//     be cut short by a crash; it is checked by size before use and by
//     hash by whoever fetches it.
//   - A restart resumes: blobs already in the store are not fetched again,
//     and a blob whose transfer failed or was stopped (Close) continues
//     from its last byte (partial/). A process killed in the middle of a
//     blob loses that blob's bytes: it is fetched again whole.
//   - If the deploy hook fails, the node switches back to its previous
//     revision, calls the hook for it, and marks the failed revision so that
//     it is not retried ([ErrRevisionFailed]); a newer revision is.
//
// What is not promised: that every follower is on the same revision at the
// same moment (each switches when it has everything), or that the hook
// runs on the manager (the manager deployed the artifacts itself). In
// Active/Active mode, followers follow the manager [cluster.View.Active]
// picks. If a new active manager has an older revision than a follower
// (it was behind when it took over), the follower keeps its revision until
// the new manager publishes.
//
// # Observability
//
// Every Syncer reports the revision its node runs to the domain
// ([cluster.Node.SetRevision]: a tag, gossiped with the node's other tags),
// so each member's [cluster.Member.Revision] is known everywhere, and the
// status page ([cluster.NewStatusHandler]) flags members that lag their
// active manager.
//
// Metrics: the revision of each node ([MetricRevisionEpoch],
// [MetricRevisionSeq]), the time to deploy ([MetricDeployDuration]), bytes
// sent and received by source ([MetricBytesSent], [MetricBytesReceived]);
// [Syncer.Stats] returns the same counters. Spans: depsync.Publish,
// depsync.Sync, depsync.Fetch, depsync.Deploy.
package depsync
