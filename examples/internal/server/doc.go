// Package server is the server of the examples: a worker or a manager of
// the demo artifact catalog, with gRPC and HTTP, the role Guard, the status
// page, and (on managers only) the management console. examples/worker,
// examples/manager and the patterns runner all start it, so what the runner
// shows is what the binaries do.
package server
