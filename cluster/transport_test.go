package cluster

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/carbonkit/carbon/internal/memnet"
	"github.com/carbonkit/carbon/role"
)

// packetLog records the sizes of the packets some transports write.
type packetLog struct {
	mu      sync.Mutex
	largest int
	over    int // packets over overSize bytes
}

// overSize is a little more than one message of TestTransportPacketSize.
const overSize = 900

func (l *packetLog) note(size int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.largest = max(l.largest, size)
	if size > overSize {
		l.over++
	}
}

func (l *packetLog) read() (largest, over int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.largest, l.over
}

// hidden wraps a transport so that it declares no packet size; it logs
// the size of every packet written.
type hidden struct {
	memberlist.NodeAwareTransport
	log *packetLog
}

func (h hidden) WriteTo(b []byte, addr string) (time.Time, error) {
	h.log.note(len(b))
	return h.NodeAwareTransport.WriteTo(b, addr)
}

func (h hidden) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	h.log.note(len(b))
	return h.NodeAwareTransport.WriteToAddress(b, a)
}

// declared is hidden with the packet size of the transport it wraps.
type declared struct {
	hidden
	size int
}

func (d declared) PacketSize() int { return d.size }

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
				if err := n.Handle("bulk", func(m Message) {
					mu.Lock()
					got[n.Name()]++
					mu.Unlock()
				}); err != nil {
					t.Fatal(err)
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
			largest, _ := sent.read()
			switch {
			case declare && largest > memnet.MaxPacket:
				t.Errorf("largest packet %d bytes, over the declared %d", largest, memnet.MaxPacket)
			case !declare && largest > 1400:
				t.Errorf("largest packet %d bytes with no declared size, over UDP's 1,400", largest)
			}
			t.Logf("largest packet: %d bytes (%d before the messages)", largest, before)
		})
	}
}
