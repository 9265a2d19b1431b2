// Package server is the server of the examples: a worker or a manager of
// the demo artifact catalog, with gRPC and HTTP, the role Guard, the status
// page, and (on managers only) the management console. examples/worker,
// examples/manager and the patterns runner all start it, so what the runner
// shows is what the binaries do.
//
// The catalog is a demo, not a database: it lives in memory and learns
// changes only from the active manager's broadcasts, with no catch-up. A
// node restarted after a write, or cut off from the active manager while
// the write went out, may never hold it, and a manager restarted by kill
// -9 comes back empty. What it does keep, the fault lab
// (cluster/clustertest/netlab) checks with real processes: one writer per
// epoch, no write on a worker, none from a resumed deposed active, and
// every write on every node that stayed connected.
package server
