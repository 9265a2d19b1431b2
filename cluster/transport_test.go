package cluster

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/carbonkit/carbon/internal/memnet"
	"github.com/carbonkit/carbon/role"
)

// packetLog records the sizes of the packets some transports write, and
// counts those that are not well-formed memberlist packets.
type packetLog struct {
	mu        sync.Mutex
	largest   int
	over      int // packets over overSize bytes
	malformed int
	example   string
}

// overSize is a little more than one message of TestTransportPacketSize.
const overSize = 900

// crcHeader is what memberlist puts before a packet's messages, outside
// the packet size it fills: a type byte and a CRC-32.
const crcHeader = 5

func (l *packetLog) note(b []byte) {
	bad := compoundError(b)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.largest = max(l.largest, len(b))
	if len(b) > overSize {
		l.over++
	}
	if bad != "" {
		l.malformed++
		l.example = bad
	}
}

// compoundError checks the layout of a memberlist compound packet (type
// 7: a part count byte, a 2-byte length per part, the parts), after the
// CRC header (type 12, 4 bytes) if there is one; other packets pass.
func compoundError(b []byte) string {
	const hasCRC, compound = 12, 7
	if len(b) >= 5 && b[0] == hasCRC {
		b = b[5:]
	}
	if len(b) < 2 || b[0] != compound {
		return ""
	}
	parts := int(b[1])
	if len(b) < 2+2*parts {
		return fmt.Sprintf("compound of %d parts in %d bytes", parts, len(b))
	}
	size := 2 + 2*parts
	for i := range parts {
		size += int(binary.BigEndian.Uint16(b[2+2*i:]))
	}
	if size != len(b) {
		return fmt.Sprintf("compound of %d parts whose lengths add up to %d bytes, in a packet of %d", parts, size, len(b))
	}
	return ""
}

func (l *packetLog) read() (largest, over int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.largest, l.over
}

func (l *packetLog) bad() (int, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.malformed, l.example
}

// hidden wraps a transport so that it declares no packet size; it logs
// the size of every packet written.
type hidden struct {
	memberlist.NodeAwareTransport
	log *packetLog
}

func (h hidden) WriteTo(b []byte, addr string) (time.Time, error) {
	h.log.note(b)
	return h.NodeAwareTransport.WriteTo(b, addr)
}

func (h hidden) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	h.log.note(b)
	return h.NodeAwareTransport.WriteToAddress(b, a)
}

// declared is hidden with the packet size of the transport it wraps.
type declared struct {
	hidden
	size int
}

func (d declared) PacketSize() int { return d.size }

// A transport that declares a packet size gets gossip packets filled up to
// it, capped at MaxGossipPacket: on the in-memory network (64 KiB, no
// MTU), ten 900-byte cluster messages sent at once travel in packets over
// UDP's 1,400 bytes, and never one over the cap, so that 300 tiny
// messages queued at once still leave every packet well-formed (over 255
// parts piggybacked on a ping would wrap the compound's count byte). The
// same network with the size hidden from cluster carries none over 1,400
// (one message a packet). Either way every member gets all the messages.
// The test waits for the gossip packets, not only for the deliveries: a
// push/pull exchange also carries serf's recent events, and under load
// one can deliver them before any gossip does.
func TestTransportPacketSize(t *testing.T) {
	for _, declare := range []bool{true, false} {
		t.Run("declared="+strconv.FormatBool(declare), func(t *testing.T) {
			nw := memnet.New()
			defer nw.Close()
			var sent packetLog
			const count = 3
			nodes := make([]*Node, count)
			join := func(i int, seeds []string) {
				tr, err := nw.NewTransport("")
				if err != nil {
					t.Error(err)
					return
				}
				cfg := local("packets", role.Worker)
				cfg.NodeName = "w" + strconv.Itoa(i)
				cfg.BindAddr, cfg.AdvertiseAddr, cfg.Seeds = tr.Addr(), tr.Addr(), seeds
				cfg.Transport = hidden{tr, &sent}
				if declare {
					cfg.Transport = declared{hidden{tr, &sent}, tr.PacketSize()}
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				n, err := Join(ctx, cfg)
				if err != nil {
					tr.Shutdown()
					t.Errorf("Join(%s): %v", cfg.NodeName, err)
					return
				}
				nodes[i] = n
			}
			join(0, nil)
			if t.Failed() {
				return
			}
			defer func() {
				for _, n := range nodes {
					if n != nil {
						n.Close()
					}
				}
			}()
			seed := []string{addrOf(nodes[0])}
			var wg sync.WaitGroup
			for i := 1; i < count; i++ {
				wg.Go(func() { join(i, seed) })
			}
			wg.Wait()
			if t.Failed() {
				return
			}
			waitFor(t, 10*time.Second, "the nodes to converge", converged(nodes, count))
			const msgs = 10
			var mu sync.Mutex
			got := map[string]int{}
			for _, n := range nodes[1:] {
				for _, name := range []string{"bulk", "t"} {
					if err := n.Handle(name, func(m Message) {
						mu.Lock()
						got[n.Name()]++
						mu.Unlock()
					}); err != nil {
						t.Fatal(err)
					}
				}
			}
			before, _ := sent.read()
			payload := make([]byte, 900) // random: memberlist compresses gossip
			rand.NewChaCha8([32]byte{1}).Read(payload)
			for range msgs {
				if err := nodes[0].Broadcast(context.Background(), "bulk", payload); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, 10*time.Second, "every member to get the 10 messages", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return got[nodes[1].Name()] == msgs && got[nodes[2].Name()] == msgs
			})
			if declare {
				// serf gossips each message more than once, so they all
				// go out in gossip packets whatever else delivered them.
				waitFor(t, 10*time.Second, "a gossip packet over 1,400 bytes", func() bool {
					largest, _ := sent.read()
					return largest > 1400
				})
			} else {
				waitFor(t, 10*time.Second, "the 10 messages to be gossiped", func() bool {
					_, over := sent.read()
					return over >= msgs
				})
			}
			if declare {
				// Many small messages at once: more than 255 fit 64 KiB.
				const tiny = 300
				for i := range tiny {
					if err := nodes[0].Broadcast(context.Background(), "t", []byte{byte(i)}); err != nil {
						t.Fatal(err)
					}
				}
				waitFor(t, 10*time.Second, "every member to get the tiny messages", func() bool {
					mu.Lock()
					defer mu.Unlock()
					return got[nodes[1].Name()] == msgs+tiny && got[nodes[2].Name()] == msgs+tiny
				})
			}
			if n, example := sent.bad(); n > 0 {
				t.Errorf("%d malformed packets, for example a %s", n, example)
			}
			largest, _ := sent.read()
			switch {
			case declare && largest > MaxGossipPacket+crcHeader:
				t.Errorf("largest packet %d bytes, over MaxGossipPacket (%d) and a CRC header", largest, MaxGossipPacket)
			case !declare && largest > 1400:
				t.Errorf("largest packet %d bytes with no declared size, over UDP's 1,400", largest)
			}
			t.Logf("largest packet: %d bytes (%d before the messages)", largest, before)
		})
	}
}
