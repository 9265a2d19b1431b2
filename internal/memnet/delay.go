package memnet

import (
	"container/heap"
	"sync"
	"time"
)

// delayQueue holds the packets in flight under latency. One goroutine
// per network delivers them in due order; it runs only while the queue is
// not empty, so an idle network owns no goroutine and needs no Close.
// That is far cheaper than a timer per packet at thousands of packets a
// second.
type delayQueue struct {
	net     *Network
	mu      sync.Mutex
	items   delayHeap
	seq     uint64
	running bool
	closed  bool
	wake    chan struct{} // a new head, or close
}

type delayed struct {
	at       time.Time
	seq      uint64 // FIFO among packets due at the same instant
	from, to string
	p        packet
}

func (q *delayQueue) push(at time.Time, from, to string, p packet) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		q.net.stats.packetsDropped.Add(1)
		return
	}
	q.seq++
	heap.Push(&q.items, delayed{at: at, seq: q.seq, from: from, to: to, p: p})
	if !q.running {
		q.running = true
		q.wake = make(chan struct{}, 1)
		go q.run(q.wake)
		return
	}
	if q.items[0].seq == q.seq { // the new packet is due first
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

func (q *delayQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.net.stats.packetsDropped.Add(uint64(len(q.items)))
	q.items = nil
	if q.running {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

func (q *delayQueue) run(wake chan struct{}) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var due []delayed
	for {
		due = due[:0]
		q.mu.Lock()
		now := time.Now()
		for len(q.items) > 0 && !q.items[0].at.After(now) {
			due = append(due, heap.Pop(&q.items).(delayed))
		}
		if len(q.items) == 0 {
			q.running = false
			q.mu.Unlock()
			q.deliver(due)
			return
		}
		next := q.items[0].at
		q.mu.Unlock()
		q.deliver(due)
		timer.Reset(time.Until(next))
		select {
		case <-timer.C:
		case <-wake:
		}
	}
}

func (q *delayQueue) deliver(due []delayed) {
	for i := range due {
		d := &due[i]
		q.net.deliver(d.from, d.to, d.p)
		d.p = packet{}
	}
}

type delayHeap []delayed

func (h delayHeap) Len() int { return len(h) }
func (h delayHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h delayHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *delayHeap) Push(x any)   { *h = append(*h, x.(delayed)) }
func (h *delayHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = delayed{}
	*h = old[:len(old)-1]
	return x
}
