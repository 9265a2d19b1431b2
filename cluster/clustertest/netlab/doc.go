// Package netlab is a fault lab of real processes on real (virtual)
// networks, and a checker of what the cluster promised.
//
// Every fault test of [clustertest] runs inside one Go process. The faults
// that break clustering systems in production are the ones one process
// cannot show: a process frozen by the kernel (SIGSTOP) that wakes up still
// believing it is the active manager, kill -9, a host cut off on one link
// while its other links work. The lab starts each node as its own OS
// process in its own Linux network namespace, linked by a veth pair to a
// bridge namespace the lab makes and removes itself, and injects those
// faults from a seeded random schedule, so a failing run replays from its
// seed.
//
// # What it needs
//
// Linux, root and the `ip` command of iproute2 ([Require] says which is
// missing). On other systems the package is empty, so that a module that
// holds it still builds there.
// Nothing else: partitions and one-way cuts are blackhole routes inside the
// hosts' namespaces, an isolated host has its bridge port set down, so
// neither netem nor nftables is needed. Addresses (10.77.0.0/24) exist only
// inside the lab's namespaces; the host's own network is never touched.
//
// # Pieces
//
//   - [Net] makes the namespaces and cuts and heals links; [Proc] is a node
//     process in its namespace (kill -9, restart, SIGSTOP, SIGCONT);
//     [Net.Dialer] dials from inside a namespace, so clients reach the nodes
//     as a host of the lab would.
//   - [Run] starts one of the Carbon deployment patterns from the example
//     worker and manager binaries, writes through the managers and reads
//     through the workers while the [Schedule] injects faults, and returns
//     the [History] and a [Summary].
//   - [Check] asserts the promises over a [History]: one writer at a time,
//     never two under one epoch, no acknowledged write lost, no write
//     accepted by a worker or by a resumed deposed active, catalogs and views
//     converged once the faults stop.
//
// # What the example catalog promises
//
// The example servers keep their catalog in memory and learn changes only
// from the active manager's broadcasts, with no catch-up: a node restarted
// after a write, or cut off from the writer while the write went out,
// may never hold it (serf ignores old events on a rejoin). So Run checks
// the catalog with [CheckOptions].NoCatchUp: an acknowledged write must be
// on the final active manager and on every worker that ran, in the view
// and connected to the writer, from before the write until a second after
// the fault that could hide it healed. The strict form (every
// acknowledged write everywhere) is reported as [Summary].NotCarried, not
// failed on; it is what a catalog with catch-up would have to pass.
// Without a quorum, writes a deposed active acknowledged in an [Overlap]
// are refused by its successor's nodes by epoch and need survive nowhere.
//
// # Bounds
//
// A client request times out after 1 s (so a frozen or cut-off node costs
// its callers one second). After each fault the lab waits up to
// [Options].RecoverBound (15 s) for one view and an acknowledged write;
// once the faults stop, catalogs and views must converge within
// [Options].ConvergeBound (15 s). The nodes run the "local" gossip profile
// unless [Options].Profile says otherwise.
//
// # What it does not promise
//
// The lab is for tests and for users' own servers; it is not a sandbox. A
// node process runs as root inside its namespace with the host's file
// system. Namespaces are named with a per-run prefix holding the lab's pid
// (cnl-<pid>-...), and [NewNet] removes those left by crashed runs.
package netlab
