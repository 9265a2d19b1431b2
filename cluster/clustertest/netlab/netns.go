//go:build linux

package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// nsPrefix starts the name of every namespace the lab makes:
// cnl-<pid>-<run>-<host>. The pid lets NewNet tell a crashed run's
// namespaces (their pid is gone) from a live parallel run's.
const nsPrefix = "cnl-"

// Subnet is the lab's private network; host i (from 1) is 10.77.0.i.
const Subnet = "10.77.0.0/24"

// Net is a lab network: a bridge namespace and one namespace per host, each
// linked to the bridge by a veth pair. Its methods may be called from any
// goroutine.
type Net struct {
	prefix string // cnl-<pid>-<run>-
	bridge string // the bridge namespace

	mu     sync.Mutex
	hosts  map[string]*Host
	order  []string
	cuts   map[[2]string]bool // blackhole routes in place: from -> to
	downs  map[string]bool    // hosts whose bridge port is down
	closed bool

	spawnq chan func()
	spawnd chan struct{}
}

// Host is one host of a Net: a network namespace with one address.
type Host struct {
	Name string // the lab's name for it ("manager-1")
	NS   string // the namespace
	IP   string // its address, no mask
	port string // its veth's name in the bridge namespace
}

// NewNet makes the bridge namespace of a new lab network, after removing
// the namespaces (and killing the processes in them) of crashed runs.
func NewNet(ctx context.Context) (*Net, error) {
	if err := Require(); err != nil {
		return nil, err
	}
	RemoveStale(ctx)
	var b [3]byte
	_, _ = rand.Read(b[:])
	n := &Net{
		prefix: fmt.Sprintf("%s%d-%s-", nsPrefix, os.Getpid(), hex.EncodeToString(b[:])),
		hosts:  map[string]*Host{}, cuts: map[[2]string]bool{}, downs: map[string]bool{},
	}
	n.bridge = n.prefix + "br"
	n.spawnq, n.spawnd = make(chan func()), make(chan struct{})
	go n.spawner()
	if err := ipRun(ctx, "netns", "add", n.bridge); err != nil {
		return nil, err
	}
	if err := ipRun(ctx, "-n", n.bridge, "link", "add", "br0", "type", "bridge"); err != nil {
		n.Close()
		return nil, err
	}
	for _, args := range [][]string{{"link", "set", "lo", "up"}, {"link", "set", "br0", "up"}} {
		if err := ipRun(ctx, append([]string{"-n", n.bridge}, args...)...); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

// AddHost makes a host namespace linked to the bridge, with the next
// address of Subnet.
func (n *Net) AddHost(ctx context.Context, name string) (*Host, error) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, fmt.Errorf("netlab: AddHost %q: network closed", name)
	}
	if _, ok := n.hosts[name]; ok {
		n.mu.Unlock()
		return nil, fmt.Errorf("netlab: AddHost: host %q already exists", name)
	}
	i := len(n.order) + 1
	if i > 250 {
		n.mu.Unlock()
		return nil, fmt.Errorf("netlab: AddHost %q: at most 250 hosts", name)
	}
	h := &Host{Name: name, NS: n.prefix + name, IP: fmt.Sprintf("10.77.0.%d", i), port: fmt.Sprintf("p%d", i)}
	n.hosts[name] = h
	n.order = append(n.order, name)
	n.mu.Unlock()

	steps := [][]string{
		{"netns", "add", h.NS},
		{"link", "add", "eth0", "netns", h.NS, "type", "veth", "peer", "name", h.port, "netns", n.bridge},
		{"-n", n.bridge, "link", "set", h.port, "master", "br0"},
		{"-n", n.bridge, "link", "set", h.port, "up"},
		{"-n", h.NS, "link", "set", "lo", "up"},
		{"-n", h.NS, "addr", "add", h.IP + "/24", "dev", "eth0"},
		{"-n", h.NS, "link", "set", "eth0", "up"},
	}
	for _, s := range steps {
		if err := ipRun(ctx, s...); err != nil {
			return nil, fmt.Errorf("netlab: AddHost %q: %w", name, err)
		}
	}
	return h, nil
}

// Host returns the host named name.
func (n *Net) Host(name string) (*Host, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	h, ok := n.hosts[name]
	return h, ok
}

// Hosts returns the names of the hosts in the order they were added.
func (n *Net) Hosts() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.order)
}

// Cut drops every packet host from sends to host to (a blackhole route in
// from's namespace): one direction of one link. to still reaches from, but
// gets no answer.
func (n *Net) Cut(ctx context.Context, from, to string) error {
	return n.route(ctx, "add", from, to)
}

// Uncut removes a Cut.
func (n *Net) Uncut(ctx context.Context, from, to string) error {
	return n.route(ctx, "del", from, to)
}

func (n *Net) route(ctx context.Context, op, from, to string) error {
	n.mu.Lock()
	f, ok1 := n.hosts[from]
	t, ok2 := n.hosts[to]
	key := [2]string{from, to}
	have := n.cuts[key]
	n.mu.Unlock()
	if !ok1 || !ok2 {
		return fmt.Errorf("netlab: cut %s -> %s: no such host", from, to)
	}
	if (op == "add") == have {
		return nil
	}
	if err := ipRun(ctx, "-n", f.NS, "route", op, "blackhole", t.IP+"/32"); err != nil {
		return err
	}
	n.mu.Lock()
	if op == "add" {
		n.cuts[key] = true
	} else {
		delete(n.cuts, key)
	}
	n.mu.Unlock()
	return nil
}

// Partition cuts both directions between every two hosts of different
// groups. Hosts in no group keep all their links (the lab's clients).
func (n *Net) Partition(ctx context.Context, groups ...[]string) error {
	for i, g := range groups {
		for _, o := range groups[i+1:] {
			for _, a := range g {
				for _, b := range o {
					if err := n.Cut(ctx, a, b); err != nil {
						return err
					}
					if err := n.Cut(ctx, b, a); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// Heal removes every Cut and brings every isolated host back.
func (n *Net) Heal(ctx context.Context) error {
	n.mu.Lock()
	var cuts [][2]string
	for k := range n.cuts {
		cuts = append(cuts, k)
	}
	var downs []string
	for h := range n.downs {
		downs = append(downs, h)
	}
	n.mu.Unlock()
	for _, c := range cuts {
		if err := n.Uncut(ctx, c[0], c[1]); err != nil {
			return err
		}
	}
	for _, h := range downs {
		if err := n.SetLink(ctx, h, true); err != nil {
			return err
		}
	}
	return nil
}

// SetLink sets host's port on the bridge up or down: down cuts the host off
// from every other host at once, as a pulled cable does.
func (n *Net) SetLink(ctx context.Context, host string, up bool) error {
	n.mu.Lock()
	h, ok := n.hosts[host]
	n.mu.Unlock()
	if !ok {
		return fmt.Errorf("netlab: link of %s: no such host", host)
	}
	state := "down"
	if up {
		state = "up"
	}
	if err := ipRun(ctx, "-n", n.bridge, "link", "set", h.port, state); err != nil {
		return err
	}
	n.mu.Lock()
	if up {
		delete(n.downs, host)
	} else {
		n.downs[host] = true
	}
	n.mu.Unlock()
	return nil
}

// Close kills every process left in the lab's namespaces and removes them.
// It is idempotent.
func (n *Net) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	close(n.spawnd)
	var names []string
	for _, h := range n.order {
		names = append(names, n.hosts[h].NS)
	}
	n.mu.Unlock()
	var first error
	for _, ns := range append(names, n.bridge) {
		if err := removeNS(ns); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// spawner starts the lab's processes from one OS thread that lives as long
// as the Net: the kernel sends a child its parent-death signal when the
// thread that forked it exits, and the Go runtime ends threads (those of
// Dialer, for one), so a process forked from an arbitrary thread could be
// killed at random.
func (n *Net) spawner() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for {
		select {
		case f := <-n.spawnq:
			f()
		case <-n.spawnd:
			return
		}
	}
}

// spawn runs start on the spawner's thread.
func (n *Net) spawn(start func() error) error {
	done := make(chan error, 1)
	select {
	case n.spawnq <- func() { done <- start() }:
		return <-done
	case <-n.spawnd:
		return fmt.Errorf("netlab: network closed")
	}
}

// RemoveStale removes the namespaces of lab runs whose process is gone,
// killing what still runs in them.
func RemoveStale(ctx context.Context) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for line := range strings.Lines(string(out)) {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, nsPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() || alive(pid) {
			continue
		}
		_ = removeNS(name)
	}
}

func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

// removeNS kills the processes in ns, then deletes it (deleting the veth
// ends inside it, and so their peers).
func removeNS(ns string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output(); err == nil {
		for f := range strings.FieldsSeq(string(out)) {
			// The lab's own process shows in the client namespace its
			// Dialer threads entered: never kill it.
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	return ipRun(ctx, "netns", "del", ns)
}

func ipRun(ctx context.Context, args ...string) error {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("netlab: ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
