//go:build linux

package netlab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Proc is a node process run inside a host's namespace with
// `ip netns exec`, which enters the namespace and then execs the binary, so
// the pid is the node's own and signals reach it directly. Its output
// goes to a log file, appended to across restarts. Its methods may be
// called from any goroutine.
type Proc struct {
	Host *Host
	Path string
	Args []string
	Env  []string // added to the lab's environment
	Log  string   // file of stdout and stderr

	net *Net // whose spawner starts the process

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	stopped bool // SIGSTOPped and not yet continued
	starts  int
}

// Command returns the process path with args on host, not started; its
// output goes to logFile.
func (n *Net) Command(host, logFile, path string, args ...string) (*Proc, error) {
	h, ok := n.Host(host)
	if !ok {
		return nil, fmt.Errorf("netlab: Command: no such host %q", host)
	}
	if logFile == "" {
		return nil, fmt.Errorf("netlab: Command on %s: a log file is required", host)
	}
	return &Proc{Host: h, Path: path, Args: args, Log: logFile, net: n}, nil
}

// Start starts the process. It is an error to start a running one.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("netlab: start %s: already running", p.Host.Name)
	}
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("netlab: start %s: %w", p.Host.Name, err)
	}
	fmt.Fprintf(logf, "=== netlab: start %d of %s at %s\n", p.starts+1, p.Host.Name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command("ip", append([]string{"netns", "exec", p.Host.NS, p.Path}, p.Args...)...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The node dies with the lab, even when the lab is killed: no orphan
	// keeps running in a namespace nobody removes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.net.spawn(cmd.Start); err != nil {
		logf.Close()
		return fmt.Errorf("netlab: start %s: %w", p.Host.Name, err)
	}
	p.cmd, p.exited, p.stopped = cmd, make(chan struct{}), false
	p.starts++
	go func(exited chan struct{}) {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}(p.exited)
	return nil
}

// Running reports whether the process was started and has not been killed.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// Stopped reports whether the process is SIGSTOPped.
func (p *Proc) Stopped() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopped
}

// Kill sends SIGKILL (kill -9) and waits for the process to exit.
func (p *Proc) Kill() error {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.cmd, p.stopped = nil, false
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("netlab: kill %s: %w", p.Host.Name, err)
	}
	select {
	case <-exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("netlab: kill %s: still running 10s after SIGKILL", p.Host.Name)
	}
}

// Terminate sends SIGTERM (a graceful shutdown) and waits up to grace for
// the exit, then kills.
func (p *Proc) Terminate(grace time.Duration) error {
	p.mu.Lock()
	cmd, exited, stopped := p.cmd, p.exited, p.stopped
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if stopped {
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		p.mu.Lock()
		p.cmd = nil
		p.mu.Unlock()
		return nil
	case <-time.After(grace):
		return p.Kill()
	}
}

// Pause sends SIGSTOP: the kernel freezes the process, as a long GC pause
// or a stalled VM would; its sockets stay open and peers' TCP handshakes
// still complete.
func (p *Proc) Pause() error { return p.signal(syscall.SIGSTOP, true) }

// Resume sends SIGCONT.
func (p *Proc) Resume() error { return p.signal(syscall.SIGCONT, false) }

func (p *Proc) signal(sig syscall.Signal, stopped bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("netlab: signal %s: not running", p.Host.Name)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("netlab: signal %s: %w", p.Host.Name, err)
	}
	p.stopped = stopped
	return nil
}
