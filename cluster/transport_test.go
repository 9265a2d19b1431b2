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

// hidden wraps a transport so that it declares no packet size.
type hidden struct{ memberlist.NodeAwareTransport }

// A transport that declares a packet size gets gossip packets filled up to
// it: on the in-memory network (64 KiB, no MTU), ten 900-byte cluster
// messages sent at once travel in packets over UDP's 1,400 bytes, and
// never one over 64 KiB. The same network with the size hidden from
// cluster carries none over 1,400 (one message a packet). Either way every
// member gets all ten.
func TestTransportPacketSize(t *testing.T) {
	for _, declare := range []bool{true, false} {
		t.Run("declared="+strconv.FormatBool(declare), func(t *testing.T) {
			nw := memnet.New()
			defer nw.Close()
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
				cfg.Transport = tr
				if !declare {
					cfg.Transport = hidden{tr}
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
			before := nw.Stats().LargestPacket
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
			largest := nw.Stats().LargestPacket
			switch {
			case declare && largest <= 1400:
				t.Errorf("largest packet %d bytes: the declared 64 KiB packet size was not used", largest)
			case declare && largest > memnet.MaxPacket:
				t.Errorf("largest packet %d bytes, over the declared %d", largest, memnet.MaxPacket)
			case !declare && largest > 1400:
				t.Errorf("largest packet %d bytes with no declared size, over UDP's 1,400", largest)
			}
			t.Logf("largest packet: %d bytes (%d before the messages)", largest, before)
		})
	}
}
