// Package clustertest starts clusters of [cluster.Node] in one process, on
// an in-memory network or on loopback sockets, and injects faults into
// them, so that tests can check what a server built on package cluster
// does under partitions, packet loss and crashes, the way
// net/http/httptest lets them test a handler.
//
// # Starting a cluster
//
//	c := clustertest.Start(t, clustertest.Options{},
//		append(clustertest.Managers(1), clustertest.Workers(3)...)...)
//	c.Crash("worker-3")
//	c.Eventually("worker-3 seen failed", 5*time.Second, func() bool {
//		return c.Sees(nil, cluster.StatusFailed, "worker-3")
//	})
//	c.Restart("worker-3")
//	if err := c.WaitConverged(ctx); err != nil { t.Fatal(err) }
//
// [Start] joins every node and waits until the views have converged. Nodes
// get names from their role ("manager-1", "worker-1", ...) unless their
// [NodeSpec] names them, the domain "clustertest" unless [Options] says
// otherwise, and the fast [cluster.ProfileLocal] timings (probe every
// 200 ms, gossip every 50 ms), so a crash is seen by all in about a
// second. [Options.Config] and [NodeSpec.Config] can change any field of
// the [cluster.Config] before Join.
//
// # Networks and faults
//
// [InMemory] (the default) runs every node on one in-process network that
// carries 200 nodes on two cores, has no MTU (gossip packets of up to
// cluster.MaxGossipPacket, 4 KiB, against 1,400 bytes over UDP), runs
// inside a synctest bubble (see Virtual time below), and takes
// faults: [Cluster.Partition] and [Cluster.Heal], [Cluster.Cut]
// one direction of a link, [Cluster.SetLoss] and [Cluster.SetLatency].
// Packet loss is deterministic under [Options.Seed]; memberlist's own
// randomness and the scheduler are not, so a run does not replay exactly.
//
// [Loopback] runs on real UDP and TCP sockets of 127.0.0.1, as production
// does. There the network faults fail the test with [ErrNeedsInMemory];
// [Cluster.Crash], [Cluster.Restart], [Cluster.Drain] and [Cluster.Leave]
// work on both.
//
// A crash cuts the node off the network first (on InMemory) and then
// closes it without leaving, so its peers find out the way they would in
// production: by failed probes. [Cluster.Restart] starts a new node with
// the same name and address, which its peers take back at once.
//
// # Virtual time
//
// A cluster on [InMemory] runs inside a [testing/synctest] bubble: create
// it inside synctest.Test and every timer of memberlist, serf and package
// cluster runs on the bubble's virtual clock, which jumps ahead whenever
// every node is waiting. A test then takes the CPU its gossip needs
// rather than the protocol's timeouts, so it can use production's
// [cluster.ProfileLAN] timings (a probe a second, failures seen in
// seconds) and still finish in a fraction of a second of real time, and a
// busy machine cannot make probes time out: time does not move while
// anything runs.
//
//	synctest.Test(t, func(t *testing.T) {
//		c := clustertest.Start(t, clustertest.Options{Config: func(cfg *cluster.Config) {
//			cfg.Profile = cluster.ProfileLAN
//		}}, append(clustertest.Managers(1), clustertest.Workers(3)...)...)
//		c.Crash("worker-3")
//		c.Eventually("worker-3 failed", time.Minute, func() bool {
//			return c.Sees(nil, cluster.StatusFailed, "worker-3")
//		})
//	})
//
// A bubble converges a cluster one gossip interval of protocol time after
// its joins, at every size BenchmarkScale tries (10 to 200 nodes), and in
// much less real time than sockets take while the CPU keeps up. Where the
// CPU the joins take binds both, a bubble is still sooner and uses less
// CPU, since no gossip or probe runs while its joins do, and it shortens
// crash detection most. Out of a bubble the in-memory network runs on the
// same timers as sockets and converges about as fast. On this package's
// default timings (ProfileLocal) sockets stop scaling first, as probes
// time out on a saturated CPU, which a bubble does not suffer. The figures
// are in docs/PERFORMANCE.md.
//
// Timeouts given to Eventually and WaitFor are then virtual too. Loopback
// cannot run in a bubble: a goroutine waiting on a socket is not waiting
// on the bubble, so its clock would never move. synctest.Test also fails
// the test if any goroutine of the cluster outlives it.
//
// # Waiting
//
// Nothing in this package sleeps for a fixed time. [Cluster.WaitFor] polls a
// condition until it holds or a context ends; [Cluster.Eventually] does the
// same with a timeout and fails the test. [Cluster.WaitConverged] waits until
// every running node sees exactly the running nodes of its partition group
// alive in their own serving state, every other node not alive, and all
// agree on each sub-domain's active manager; its error names a node whose
// view is still wrong. [Cluster.WaitSees] waits until nodes see others with
// a status (a crashed node failed, a node that left left); its error says
// which node sees what.
//
// # Clean-up and leaks
//
// Start and [New] register [Cluster.Stop] with t.Cleanup, then check with
// go.uber.org/goleak that no goroutine started since the cluster was
// created is still running, so every test gets leak checks for free. The
// check cannot tell the cluster's goroutines from those of other tests
// running in parallel: set [Options.NoLeakCheck] in tests that call
// t.Parallel.
//
// # Soak
//
// The package's own fault suite (faults_test.go) runs small clusters by
// default; CARBON_SOAK=1 runs them bigger and longer, and
// BenchmarkScale measures 10 to 200 nodes against raw serf, started as a
// deployment starts them (three seeds, then every other node at once).
//
// # What it does not do
//
// It does not model real network behaviour beyond what memberlist sees:
// no congestion or MTU on InMemory, and no faults at all on Loopback. A
// one-way [Cluster.Cut] is not reflected in what WaitConverged expects,
// as memberlist's indirect probes may keep such a node alive. Clusters are
// for tests: t may be nil (in Examples), but then failures panic.
package clustertest
