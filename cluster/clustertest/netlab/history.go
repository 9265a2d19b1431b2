//go:build linux

package netlab

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Result is how a client operation ended.
type Result string

// The results of an operation. Unknown is a timeout or a broken
// connection: the operation may or may not have taken effect.
const (
	OK      Result = "ok"
	Fail    Result = "fail"
	Unknown Result = "unknown"
)

// Op kinds.
const (
	OpWrite = "write" // a write through the managers' balancer: one Op per attempt on one node
	OpRead  = "read"  // a read of the catalog through the workers' balancer
	// OpWorkerWrite is a write sent straight to a worker, which must refuse it.
	OpWorkerWrite = "worker-write"
)

// Op is one client operation on one node, with the times the client
// invoked it and saw it complete.
type Op struct {
	Kind             string
	Node             string
	Key, Value       string
	Invoke, Complete time.Time
	Result           Result
	Status           int    // HTTP status, 0 when none came back
	Epoch            uint64 // the epoch an acknowledged write carries
	Catalog          map[string]string
	Err              string
}

// NodeEvent is one line of a node's own record (the example servers'
// -history file, CARBON_HISTORY): JSON with the fields below.
//
//	{"time":"RFC3339Nano","node":"manager-1","event":"accept","key":"k1","epoch":2,"seq":7}
//
// Events: accept (a write acknowledged), reject, apply (a follower applied
// a change), catchup (the node adopted a whole catalog at Epoch/Seq, Keys,
// from a peer), revision (switched to revision Revision), writable (Value
// true or false at Epoch).
type NodeEvent struct {
	Time     time.Time `json:"time"`
	Node     string    `json:"node"`
	Event    string    `json:"event"`
	Key      string    `json:"key,omitempty"`
	Epoch    uint64    `json:"epoch,omitempty"`
	Seq      uint64    `json:"seq,omitempty"`
	Revision string    `json:"revision,omitempty"`
	Value    *bool     `json:"value,omitempty"`
	Keys     []string  `json:"keys,omitempty"` // catchup
	From     string    `json:"from,omitempty"` // catchup
}

// ReadNodeHistory reads a node's record, one JSON object a line. A line
// that is not such an object, or that lacks the time, the node or a known
// event, is an error naming the line.
func ReadNodeHistory(r io.Reader) ([]NodeEvent, error) {
	var out []NodeEvent
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		var e NodeEvent
		if err := json.Unmarshal(b, &e); err != nil {
			return out, fmt.Errorf("netlab: node history line %d: %w", line, err)
		}
		switch {
		case e.Time.IsZero():
			return out, fmt.Errorf("netlab: node history line %d: no \"time\"", line)
		case e.Node == "":
			return out, fmt.Errorf("netlab: node history line %d: no \"node\"", line)
		}
		switch e.Event {
		case "accept", "reject", "apply":
			if e.Key == "" {
				return out, fmt.Errorf("netlab: node history line %d: %s without \"key\"", line, e.Event)
			}
		case "catchup":
		case "revision":
			if e.Revision == "" {
				return out, fmt.Errorf("netlab: node history line %d: revision without \"revision\"", line)
			}
		case "writable":
			if e.Value == nil {
				return out, fmt.Errorf("netlab: node history line %d: writable without \"value\"", line)
			}
		default:
			return out, fmt.Errorf("netlab: node history line %d: unknown event %q", line, e.Event)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// Fault kinds.
const (
	FaultKill      = "kill"      // kill -9, then restart after Duration
	FaultPause     = "pause"     // SIGSTOP for Duration, then SIGCONT
	FaultPartition = "partition" // hosts split into Groups for Duration
	FaultCut       = "cut"       // packets From -> To dropped for Duration
	FaultIsolate   = "isolate"   // every link of Target down for Duration
)

// FaultRecord is a fault as injected: Start when it began, End when it was
// undone (restart, SIGCONT, heal).
type FaultRecord struct {
	Fault
	Start, End time.Time
	// WasActive is set when Target was the active manager at Start.
	WasActive bool
	// Recovered is how long after Start a write sent after Start was
	// acknowledged (the outage clients saw, fault included), and ViewAfter
	// how long after End every node saw one view; -1 when never within the
	// lab's bound.
	Recovered, ViewAfter time.Duration
}

// View is what a node sees of one domain: its live members and the active
// manager of each sub-domain with managers.
type View struct {
	Domain  string
	Members []string          // alive, sorted
	Active  map[string]string // sub-domain -> active manager
}

// Final is what a live node held once the faults stopped: its catalog and
// views, observed at Time.
type Final struct {
	Time     time.Time
	Node     string
	Writable bool
	Catalog  map[string]string // artifact -> version
	Views    []View
}

// History is what a run recorded.
type History struct {
	Seed    int64
	Pattern int
	// Roles maps every node to "manager" or "worker".
	Roles map[string]string
	// Quorum is set when the managers run Active/Passive with a quorum,
	// which promises one writer at a time, not only one per epoch.
	Quorum bool
	// Starts holds every start of every node process.
	Starts    map[string][]time.Time
	Ops       []Op
	Nodes     []NodeEvent // nil when the servers keep no record
	Faults    []FaultRecord
	FaultsEnd time.Time // when the last fault was undone
	Finals    []Final
}
