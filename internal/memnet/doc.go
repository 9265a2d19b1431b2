// Package memnet is an in-memory network for running many memberlist (and
// so serf) nodes in one process, fast, with faults injected on demand.
//
// A [Network] hands out [Transport] values, one per node, each at an
// "ip:port" address. A Transport implements memberlist.NodeAwareTransport:
// set it as memberlist.Config.Transport, or as
// serf.Config.MemberlistConfig.Transport.
//
//	n := memnet.New(memnet.WithSeed(1))
//	t, _ := n.NewTransport("")           // next free address, 10.0.0.1:7946
//	cfg := memberlist.DefaultLocalConfig()
//	cfg.Name, cfg.Transport = "node-1", t
//	m, _ := memberlist.Create(cfg)
//	n.Crash(t.Addr())                    // peers now see node-1 fail
//
// # What it promises
//
// Packets behave like UDP datagrams: each WriteTo is delivered whole, at
// most once, to the PacketCh of the transport at the destination address,
// or silently lost. The buffer is copied, so the sender may reuse it. The
// sender never blocks: a full receive queue drops the packet, as a full
// socket buffer would. Packets have no ordering guarantee under latency
// changes, and the From address of a received packet names the sender.
//
// Streams behave like TCP connections: a dial either fails or returns a
// reliable, ordered [net.Conn] whose other end arrives on the listener's
// StreamCh. Writes never block (the buffer grows); deadlines work as
// net.Conn documents; Close gives the peer io.EOF after the data already
// written.
//
// Faults act on addresses, take effect at once and can be combined:
//
//   - [Network.Crash]: the address is cut off both ways; its memberlist
//     keeps running but hears nothing, like a hung process or dead host.
//     [Network.Restart] undoes it.
//   - [Network.Partition]: nodes in different groups cannot talk; the
//     addresses not listed form one more group.
//   - [Network.Cut]: packets of one direction of a link are lost.
//   - [Network.SetLoss], [Network.SetLatency]: random packet loss (seeded by
//     [WithSeed]) and one-way delay.
//   - [Network.Heal] removes partitions and cuts.
//
// Across a crash, partition or cut, packets are dropped without error,
// dials fail at once with an error wrapping [ErrUnreachable] (no waiting
// for the dial timeout: a fast failure keeps tests fast, and memberlist
// treats both alike) and open streams between the separated nodes are
// reset, so reads and writes on them return an error wrapping [ErrReset]
// and nothing hangs. A stream needs both directions of its link, as TCP
// does, so one Cut is enough to fail it either way. Loss never affects
// streams. A dial to an address with no live transport fails with
// [ErrRefused].
//
// [Transport.Shutdown] frees the address, so a new transport at the same
// address models a restarted process. Shutting down every transport (or
// calling [Network.Close]) leaves no goroutine behind.
//
// # What it does not
//
// It is not a byte-accurate TCP or IP model: there is no congestion,
// no MTU (packets of any size pass whole), no stream latency beyond the
// dial's round trip, no DNS (addresses must be literal IPs, as memberlist
// advertises them) and no routing by node name. Loss decisions are
// deterministic under [WithSeed], but memberlist's own randomness and
// goroutine scheduling are not, so a whole cluster run does not replay.
package memnet
