// Package server is the server of the examples: a worker or a manager of
// the demo artifact catalog, with gRPC and HTTP, the role Guard, the status
// page, and (on managers only) the management console. examples/worker,
// examples/manager and the patterns runner all start it, so what the runner
// shows is what the binaries do.
//
// The catalog never loses an acknowledged write and never serves stale
// data as fresh: changes carry the writer's epoch and a sequence number,
// followers catch up from the active manager before they report ready
// (catchup.go), and the active manager acknowledges a write only when it
// is safe (Server.write). Only Active/Passive managers are supported by
// this numbering: in Active/Active mode two writers would number changes
// alike.
// The fault lab (cluster/clustertest/netlab) checks what the catalog
// keeps with real processes in network namespaces.
package server
