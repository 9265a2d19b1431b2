package timing

import (
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// Profile numbers match cluster.Profile.
type Profile int

// The profiles.
const (
	LAN Profile = iota
	Local
	WAN
)

// Serf returns a fresh serf config with the timings of profile p.
func Serf(p Profile) *serf.Config {
	c := serf.DefaultConfig()
	switch p {
	case Local:
		ml := memberlist.DefaultLocalConfig()
		// Gossip every 50 ms to 3 peers: fast dissemination without the
		// packet load that makes 50 nodes on two cores flap.
		// 200 ms probes with a 150 ms timeout: a crashed node is declared
		// dead by all within about a second on 10 nodes, while a busy
		// machine (tests under -race) does not make healthy members flap.
		ml.ProbeInterval = 200 * time.Millisecond
		ml.ProbeTimeout = 150 * time.Millisecond
		ml.GossipInterval = 50 * time.Millisecond
		ml.GossipNodes = 3
		ml.GossipToTheDeadTime = 2 * time.Second
		ml.SuspicionMult = 2
		ml.SuspicionMaxTimeoutMult = 3
		ml.RetransmitMult = 3
		ml.PushPullInterval = 2 * time.Second
		ml.TCPTimeout = 5 * time.Second
		ml.DeadNodeReclaimTime = 500 * time.Millisecond
		c.MemberlistConfig = ml
		c.ReapInterval = time.Second
		c.ReconnectInterval = 500 * time.Millisecond
		c.ReconnectTimeout = 5 * time.Minute
		c.TombstoneTimeout = 5 * time.Minute
		c.LeavePropagateDelay = 50 * time.Millisecond
		// SetTags and Leave wait this long for their broadcast; short so
		// that Close of a cut-off node does not hang on it.
		c.BroadcastTimeout = 500 * time.Millisecond
		c.FlapTimeout = 5 * time.Second
	case WAN:
		c.MemberlistConfig = memberlist.DefaultWANConfig()
	}
	// A name whose holder was declared dead may be taken by a new address
	// (a pod restarted with a new IP) this long after: memberlist's
	// default 0 refuses the new address until the dead entry is forgotten
	// (GossipToTheDeadTime, 30 s on a LAN).
	if c.MemberlistConfig.DeadNodeReclaimTime == 0 {
		c.MemberlistConfig.DeadNodeReclaimTime = c.MemberlistConfig.ProbeInterval
	}
	// No gossip compression on a LAN or one machine: memberlist builds an
	// LZW writer for every packet it sends, which cost 16 % of the CPU of
	// 100 nodes converging here, to save bandwidth a LAN does not lack (a
	// packet holds no more messages compressed: its budget is counted
	// before compression). Compressed packets from others are still read.
	c.MemberlistConfig.EnableCompression = p == WAN
	return c
}
