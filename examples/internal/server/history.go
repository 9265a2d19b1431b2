package server

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"
)

// The history record: with Config.HistoryPath (the binaries' -history
// flag, $CARBON_HISTORY) a server appends one JSON object per line for
// each event below, so that a fault checker can replay a run afterwards.
// Each line is written with one write call as the event happens (no
// buffering, no fsync: a kill -9 loses nothing already written, a power
// cut may). Every line has "time" (RFC 3339 with nanoseconds, the
// server's wall clock), "node" (its name) and "event", which says which
// of the types below the line is.
//
//	{"time":"…","node":"m1","event":"accept","key":"a","epoch":7,"seq":12}
//	{"time":"…","node":"m1","event":"reject","key":"a","reason":"lost-lease"}
//	{"time":"…","node":"w1","event":"apply","key":"a","epoch":7,"seq":12}
//	{"time":"…","node":"w1","event":"catchup","epoch":7,"seq":12,"keys":["a"],"from":"m1"}
//	{"time":"…","node":"w1","event":"revision","revision":"r-3"}
//	{"time":"…","node":"m1","event":"writable","value":true,"epoch":7}

// HistoryAccept is a write the server acknowledged (HTTP 2xx, gRPC OK):
// the change of Key it made at Epoch, numbered Seq.
type HistoryAccept struct {
	Time  string `json:"time"`
	Node  string `json:"node"`
	Event string `json:"event"` // "accept"
	Key   string `json:"key"`
	Epoch uint64 `json:"epoch"`
	Seq   uint64 `json:"seq"`
}

// HistoryReject is a write the server refused. Reason is one of
// "read-only" (not the active manager: 403 / FailedPrecondition),
// "catching-up" (just became active, not caught up: 503 / Unavailable),
// "lost-lease" (lost the role or its lease while applying: undone, 503 /
// Unavailable), "unconfirmed" (applied and sent, but the stand-by managers
// did not confirm it: it may survive, 503 / Unavailable), "not-found" or
// "stale-epoch"; a client that gets a 503 may retry.
type HistoryReject struct {
	Time   string `json:"time"`
	Node   string `json:"node"`
	Event  string `json:"event"` // "reject"
	Key    string `json:"key"`
	Reason string `json:"reason"`
}

// HistoryApply is a change a follower (a worker or a stand-by manager)
// received and applied, in sequence order.
type HistoryApply struct {
	Time  string `json:"time"`
	Node  string `json:"node"`
	Event string `json:"event"` // "apply"
	Key   string `json:"key"`
	Epoch uint64 `json:"epoch"`
	Seq   uint64 `json:"seq"`
}

// HistoryCatchUp is a snapshot the node adopted from From to catch up
// (at start, after a gap, or on becoming active): its catalog is then
// exactly Keys at Epoch and Seq.
type HistoryCatchUp struct {
	Time  string   `json:"time"`
	Node  string   `json:"node"`
	Event string   `json:"event"` // "catchup"
	Epoch uint64   `json:"epoch"`
	Seq   uint64   `json:"seq"`
	Keys  []string `json:"keys"`
	From  string   `json:"from"`
}

// HistoryRevision is a depsync revision the node switched to.
type HistoryRevision struct {
	Time     string `json:"time"`
	Node     string `json:"node"`
	Event    string `json:"event"` // "revision"
	Revision string `json:"revision"`
}

// HistoryWritable is a change of the node's cluster Writable (sampled
// every few milliseconds, so a flip shorter than that may be missed), with
// the epoch it holds (0 when not writable).
type HistoryWritable struct {
	Time  string `json:"time"`
	Node  string `json:"node"`
	Event string `json:"event"` // "writable"
	Value bool   `json:"value"`
	Epoch uint64 `json:"epoch"`
}

// history appends events to a file; a nil *history records nothing.
type history struct {
	mu   sync.Mutex
	f    *os.File
	node string
	err  error // the first write error, reported once
}

func openHistory(path, node string) (*history, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("server: history file: %w", err)
	}
	return &history{f: f, node: node}, nil
}

func now() string { return time.Now().Format(time.RFC3339Nano) }

func (h *history) write(v any) {
	if h == nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	b = append(b, '\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, err := h.f.Write(b); err != nil && h.err == nil {
		h.err = err
	}
}

func (h *history) accept(c change) {
	if h != nil {
		h.write(HistoryAccept{now(), h.node, "accept", c.Name, c.Epoch, c.Seq})
	}
}

func (h *history) reject(key, reason string) {
	if h != nil {
		h.write(HistoryReject{now(), h.node, "reject", key, reason})
	}
}

func (h *history) apply(cs []change) {
	if h != nil {
		for _, c := range cs {
			h.write(HistoryApply{now(), h.node, "apply", c.Name, c.Epoch, c.Seq})
		}
	}
}

func (h *history) catchUp(s Snapshot, from string) {
	if h != nil {
		keys := make([]string, 0, len(s.Artifacts))
		for _, a := range s.Artifacts {
			keys = append(keys, a.Name)
		}
		h.write(HistoryCatchUp{now(), h.node, "catchup", s.Epoch, s.Seq, keys, from})
	}
}

func (h *history) writable(v bool, epoch uint64) {
	if h != nil {
		h.write(HistoryWritable{now(), h.node, "writable", v, epoch})
	}
}

// Revision records a depsync revision the server switched to (none of the
// example servers runs depsync yet; a program that embeds one does).
func (s *Server) Revision(id string) {
	if h := s.hist; h != nil {
		h.write(HistoryRevision{now(), h.node, "revision", id})
	}
}

func (h *history) close() error {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.f.Close(); err != nil {
		return err
	}
	return h.err
}
