package clustertest

import (
	"errors"
	"log/slog"
	"time"

	"github.com/carbonkit/carbon/cluster"
	"github.com/carbonkit/carbon/role"
)

// Network says what a Cluster's nodes gossip over.
type Network int

const (
	// InMemory (the default) runs every node on one in-process network:
	// fast, able to carry hundreds of nodes, and with every fault control.
	InMemory Network = iota
	// Loopback runs every node on real UDP and TCP sockets of 127.0.0.1.
	// Crash, Restart, Drain and Leave work; the network faults (Partition,
	// Cut, SetLoss, SetLatency) do not, as the kernel's loopback cannot be
	// told to drop packets.
	Loopback
)

// String returns "memnet" or "loopback".
func (n Network) String() string {
	if n == Loopback {
		return "loopback"
	}
	return "memnet"
}

// NodeSpec describes one node of a Cluster.
type NodeSpec struct {
	// Name is the node's unique name. Default: its role and a counter,
	// "manager-1", "worker-1", "worker-2", "observer-1"..., in the order
	// the nodes are added.
	Name string
	// Role is role.Worker or role.Manager; empty for an observer.
	Role role.Role
	// SubDomain is the node's sub-domain; empty for the role's default.
	SubDomain string
	// Observer makes the node an observer (Role must be empty).
	Observer bool
	// Endpoints and Properties are passed to [cluster.Config].
	Endpoints  map[string]string
	Properties map[string]string
	// Config, if set, is called with the node's final [cluster.Config]
	// just before Join, after [Options.Config]: the place for any setting
	// this spec has no field for. It is called again on every Restart.
	Config func(*cluster.Config)
}

// Workers returns n worker specs with default names.
func Workers(n int) []NodeSpec { return specs(n, NodeSpec{Role: role.Worker}) }

// Managers returns n manager specs with default names.
func Managers(n int) []NodeSpec { return specs(n, NodeSpec{Role: role.Manager}) }

// Observers returns n observer specs with default names.
func Observers(n int) []NodeSpec { return specs(n, NodeSpec{Observer: true}) }

func specs(n int, s NodeSpec) []NodeSpec {
	out := make([]NodeSpec, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// Options configure a Cluster. The zero value is a cluster of domain
// "clustertest" on the in-memory network with fast timings.
type Options struct {
	// Network is InMemory (default) or Loopback.
	Network Network
	// Domain of every node. Default "clustertest".
	Domain string
	// Seed makes the in-memory network's packet loss deterministic.
	// 0 means seed 1, so that runs drop the same packets unless told
	// otherwise; memberlist's own randomness is not covered.
	Seed int64
	// Key is the gossip encryption key of every node (16, 24 or 32 bytes);
	// empty means no encryption.
	Key []byte
	// Logger receives every node's logs. Default: discarded.
	Logger *slog.Logger
	// Config, if set, is called with every node's [cluster.Config] before
	// the node's own [NodeSpec.Config]. Nodes start with
	// [cluster.ProfileLocal] timings; set Profile here for others.
	Config func(*cluster.Config)
	// Timeout bounds Start's wait for convergence and each Join. Default
	// 30 s, plus 100 ms per node beyond 10.
	Timeout time.Duration
	// SameNetwork puts this cluster on the in-memory network of another
	// InMemory cluster, to test what happens between clusters (another
	// domain, another key). Fault controls of either act on the shared
	// network. Stop this cluster before the other (t.Cleanup does, when
	// it was started after); the other's leak check covers both.
	SameNetwork *Cluster
	// NoLeakCheck turns off the goroutine leak check of the cleanup, for
	// tests that run in parallel with others (t.Parallel), whose
	// goroutines the check cannot tell apart.
	NoLeakCheck bool
}

// Errors of a Cluster.
var (
	// ErrUnknownNode is returned for a node name the cluster never had.
	ErrUnknownNode = errors.New("clustertest: unknown node")
	// ErrNotRunning is returned by an operation on a crashed or left node.
	ErrNotRunning = errors.New("clustertest: node is not running")
	// ErrNeedsInMemory is reported by the fault controls on Loopback.
	ErrNeedsInMemory = errors.New("clustertest: this fault needs the InMemory network (Options.Network), the cluster runs on Loopback")
	// ErrNotConverged wraps the error of a wait that timed out.
	ErrNotConverged = errors.New("clustertest: not converged")
)
