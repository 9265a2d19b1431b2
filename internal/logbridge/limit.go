package logbridge

import (
	"bytes"
	"sync"
	"time"
)

// Warnings and errors are bounded per kind of line: memberlist logs one for
// every bad packet it reads (a wrong key, a port scanner, junk), so anyone
// who can reach the gossip port could otherwise fill the log. A kind is the
// line's first words up to the first ':' after the subsystem's (for example
// "memberlist: Decrypt packet failed"). Each kind passes burst lines, then
// one per interval; the next line that passes says how many were dropped.
const (
	burst    = 5
	interval = time.Second
	maxKinds = 256 // kinds tracked at once; past it the table starts afresh
)

type limiter struct {
	mu    sync.Mutex
	now   func() time.Time
	kinds map[string]*bucket
}

type bucket struct {
	tokens  float64
	last    time.Time
	dropped int
}

func newLimiter() *limiter {
	return &limiter{now: time.Now, kinds: make(map[string]*bucket)}
}

// allow reports whether line may be logged now, and how many lines of its
// kind were dropped since the last one that was.
func (l *limiter) allow(line []byte) (ok bool, dropped int) {
	k := kind(line)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.kinds[string(k)]
	if b == nil {
		if len(l.kinds) >= maxKinds {
			clear(l.kinds)
		}
		b = &bucket{tokens: burst, last: now}
		l.kinds[string(k)] = b
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()/interval.Seconds())
	b.last = now
	if b.tokens < 1 {
		b.dropped++
		return false, 0
	}
	b.tokens--
	dropped, b.dropped = b.dropped, 0
	return true, dropped
}

// kind is the line up to its second ':' ("memberlist: Decrypt packet
// failed"), or its first 48 bytes, whichever is shorter.
func kind(line []byte) []byte {
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		if j := bytes.IndexByte(line[i+1:], ':'); j >= 0 {
			line = line[:i+1+j]
		}
	}
	return line[:min(len(line), 48)]
}
