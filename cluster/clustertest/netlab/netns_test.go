//go:build linux

package netlab

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/carbonkit/carbon/internal/wait"
)

// inNS runs f on a thread inside host's namespace (the thread ends after).
func inNS(t *testing.T, h *Host, f func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		fd, err := os.Open("/var/run/netns/" + h.NS)
		if err != nil {
			done <- err
			return
		}
		defer fd.Close()
		if err := unix.Setns(int(fd.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		f()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// udpListen opens a UDP socket on h's address, inside its namespace.
func udpListen(t *testing.T, h *Host) *net.UDPConn {
	var c *net.UDPConn
	inNS(t, h, func() {
		var err error
		if c, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(h.IP), Port: 5000}); err != nil {
			t.Error(err)
		}
	})
	if c == nil {
		t.FailNow()
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// gets reports whether a datagram from one socket reaches the other.
func gets(from, to *net.UDPConn) bool {
	if _, err := from.WriteToUDP([]byte("x"), to.LocalAddr().(*net.UDPAddr)); err != nil {
		return false
	}
	to.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	b := make([]byte, 8)
	_, _, err := to.ReadFromUDP(b)
	return err == nil
}

func TestNetFaults(t *testing.T) {
	if err := Require(); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	n, err := NewNet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var hs []*Host
	for _, name := range []string{"a", "b", "c"} {
		h, err := n.AddHost(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	a, b, c := udpListen(t, hs[0]), udpListen(t, hs[1]), udpListen(t, hs[2])
	if !gets(a, b) || !gets(b, a) || !gets(a, c) {
		t.Fatal("hosts do not reach each other before any fault")
	}
	if err := n.Cut(ctx, "a", "b"); err != nil {
		t.Fatal(err)
	}
	if gets(a, b) || !gets(b, a) || !gets(a, c) {
		t.Errorf("cut a->b: want only a->b dropped; a->b %v, b->a %v, a->c %v", gets(a, b), gets(b, a), gets(a, c))
	}
	if err := n.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.Partition(ctx, []string{"a"}, []string{"b", "c"}); err != nil {
		t.Fatal(err)
	}
	if gets(a, b) || gets(c, a) || !gets(b, c) {
		t.Errorf("partition {a} | {b c}: a->b %v, c->a %v, b->c %v", gets(a, b), gets(c, a), gets(b, c))
	}
	if err := n.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.SetLink(ctx, "c", false); err != nil {
		t.Fatal(err)
	}
	if gets(a, c) || gets(c, b) || !gets(a, b) {
		t.Errorf("c isolated: a->c %v, c->b %v, a->b %v", gets(a, c), gets(c, b), gets(a, b))
	}
	if err := n.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	// A port set up again takes a moment to carry traffic (carrier, ARP).
	if err := wait.For(5*time.Second, 50*time.Millisecond, func() bool { return gets(a, c) && gets(c, b) && gets(a, b) && gets(b, a) }); err != nil {
		t.Error("after Heal: hosts do not all reach each other again within 5s")
	}
	if _, err := n.AddHost(ctx, "a"); err == nil || !strings.Contains(err.Error(), `"a"`) {
		t.Errorf("AddHost of a second a: error %v, want one naming it", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(out), n.prefix) {
		t.Errorf("namespaces of %s left after Close:\n%s", n.prefix, out)
	}
}

// A crashed run's namespaces (their pid is gone) are removed by the next
// lab, a live run's are not.
func TestRemoveStale(t *testing.T) {
	if err := Require(); err != nil {
		t.Skip(err)
	}
	// A pid above the kernel's pid_max cannot be alive.
	stale := nsPrefix + "4194305-dead00-x"
	if err := ipRun(context.Background(), "netns", "add", stale); err != nil {
		t.Fatal(err)
	}
	mine := nsPrefix + "1-live00-x" // pid 1 is alive
	if err := ipRun(context.Background(), "netns", "add", mine); err != nil {
		t.Fatal(err)
	}
	defer ipRun(context.Background(), "netns", "del", mine)
	RemoveStale(context.Background())
	out, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(out), stale) {
		_ = ipRun(context.Background(), "netns", "del", stale)
		t.Errorf("stale namespace %s not removed", stale)
	}
	if !strings.Contains(string(out), mine) {
		t.Errorf("namespace %s of a live pid was removed", mine)
	}
}

func TestHasHistoryFlag(t *testing.T) {
	dir := t.TempDir()
	with, without := dir+"/with", dir+"/without"
	os.WriteFile(with, []byte("#!/bin/sh\necho '  -history string' >&2\nexit 0\n"), 0o755)
	os.WriteFile(without, []byte("#!/bin/sh\necho '  -http string' >&2\nexit 0\n"), 0o755)
	if !HasHistoryFlag(context.Background(), with) || HasHistoryFlag(context.Background(), without) {
		t.Errorf("HasHistoryFlag: with %v, without %v; want true, false", HasHistoryFlag(context.Background(), with), HasHistoryFlag(context.Background(), without))
	}
}

// procState is the state letter of /proc/<pid>/stat: S sleeping, T stopped.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "gone"
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	st, _, _ := strings.Cut(rest, " ")
	return st
}

func TestProcLifecycle(t *testing.T) {
	if err := Require(); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	n, err := NewNet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := n.AddHost(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Command("nowhere", "x.log", "sleep"); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("Command on an unknown host: error %v, want one naming it", err)
	}
	log := filepath.Join(t.TempDir(), "a.log")
	// The process prints the namespace it runs in, then sleeps.
	p, err := n.Command("a", log, "sh", "-c", "ip -o addr show eth0; exec sleep 60")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err == nil {
		t.Error("second Start of a running process: no error")
	}
	pid := func() int { p.mu.Lock(); defer p.mu.Unlock(); return p.cmd.Process.Pid }
	wantState := func(want string) {
		t.Helper()
		if err := wait.For(5*time.Second, 10*time.Millisecond, func() bool { return procState(pid()) == want }); err != nil {
			t.Fatalf("process state %s, want %s", procState(pid()), want)
		}
	}
	wantState("S")
	if err := p.Pause(); err != nil {
		t.Fatal(err)
	}
	wantState("T")
	if !p.Stopped() {
		t.Error("Stopped() false after Pause")
	}
	if err := p.Resume(); err != nil {
		t.Fatal(err)
	}
	wantState("S")
	first := pid()
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if p.Running() || procState(first) != "gone" {
		t.Errorf("after Kill: Running %v, state %s", p.Running(), procState(first))
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	wantState("S")
	if err := p.Terminate(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(log)
	if !strings.Contains(string(b), "10.77.0.1/24") || strings.Count(string(b), "=== netlab: start") != 2 {
		t.Errorf("log of two runs in namespace a (10.77.0.1):\n%s", b)
	}
}
