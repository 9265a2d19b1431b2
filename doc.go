// Package carbon is the overview of an embedded Go SDK that runs any Go
// server in a Carbon-style cluster. It has no code of its own; the work is
// done by its packages:
//
//   - [github.com/carbonkit/carbon/role]: roles (worker, manager), the
//     read-only Guard for gRPC and HTTP (default-deny), and the classifier
//     of reads and writes.
//   - [github.com/carbonkit/carbon/cluster]: joining a domain and
//     sub-domain over serf, views of the members, the Active/Passive
//     election with epochs, drain, cluster messages, key rotation.
//   - [github.com/carbonkit/carbon/cluster/clustertest]: in-process
//     clusters with fault injection (partitions, crashes, packet loss), for
//     tests, as net/http/httptest is for handlers.
//   - [github.com/carbonkit/carbon/cluster/depsync]: artifacts from the
//     active manager to every worker, verified and switched atomically.
//   - [github.com/carbonkit/carbon/lb]: client-side balancing across
//     peers for gRPC and HTTP, and routing of reads to workers and writes
//     to the active manager.
//   - [github.com/carbonkit/carbon/lb/nginx]: Nginx upstreams kept in
//     sync with membership.
//
// # The model
//
// A domain is one cluster: one gossip pool. Its members are grouped in
// sub-domains, "worker" and "mgt" by default. Workers serve clients and
// are read-only: they load artifacts and read configuration, never change
// them. Managers deploy and configure artifacts and carry the management
// console; in Active/Passive mode (the default) only the active manager of
// a sub-domain writes. Observers (gateways, load balancers, tools) see a
// domain without serving it.
//
// # Imports
//
// role is a leaf; cluster imports role; lb imports cluster and role.
// Libraries use the OpenTelemetry API only and log with log/slog; there
// are no globals, so one process may hold several Nodes, one per domain.
package carbon
