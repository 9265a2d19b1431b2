// Package role holds the roles of a Carbon-style cluster and enforces
// read-only mode on the nodes that must not write.
//
// # Roles
//
// A [Worker] serves client requests and is read-only: it may load artifacts
// and read configuration, never change them. A [Manager] deploys and
// configures artifacts; in Active/Passive mode only the active manager of a
// sub-domain is writable, the stand-bys are read-only until they take over.
// An observer (role [None]) sees a domain but never serves it.
//
// # State
//
// Everything in this package reads a small [State] interface (Role and
// Writable) rather than a cluster node, so that role stays a leaf package:
// *cluster.Node implements State, and [Static] gives a fixed State for a
// single server or a test.
package role
