//go:build linux

package netlab

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// Ports every node listens on inside its own namespace.
const (
	gossipPort = "7946"
	followPort = "7947"
	grpcPort   = "9000"
	httpPort   = "8080"
)

// nodeSpec is one node of a pattern: its role, domain and flags.
type nodeSpec struct {
	name, role, domain string
	follow             string // pattern 2 workers: the managers' domain
}

// pattern returns the nodes of a Carbon deployment pattern as the example
// runner (examples/internal/patterns) lays them out, and whether its
// managers run with a quorum. Pattern 3 gets three managers with a quorum
// of three, so that the lab also checks the one-writer-at-a-time promise.
func pattern(p int) ([]nodeSpec, bool, error) {
	switch p {
	case 1:
		d := "carbon.pattern1"
		return []nodeSpec{{"manager-1", "manager", d, ""}, {"worker-1", "worker", d, ""}, {"worker-2", "worker", d, ""}}, false, nil
	case 2:
		m, w := "carbon.pattern2.mgt", "carbon.pattern2.worker"
		return []nodeSpec{{"manager-1", "manager", m, ""}, {"manager-2", "manager", m, ""},
			{"worker-1", "worker", w, m}, {"worker-2", "worker", w, m}}, false, nil
	case 3:
		d := "carbon.pattern3"
		return []nodeSpec{{"manager-1", "manager", d, ""}, {"manager-2", "manager", d, ""}, {"manager-3", "manager", d, ""},
			{"worker-1", "worker", d, ""}, {"worker-2", "worker", d, ""}}, true, nil
	}
	return nil, false, fmt.Errorf("netlab: pattern must be 1, 2 or 3, got %d", p)
}

// nodeArgs are the flags of one node's process.
func nodeArgs(n nodeSpec, specs []nodeSpec, ip func(string) string, quorum bool, profile, history string) []string {
	var seeds, followSeeds []string
	for _, o := range specs {
		if o.name != n.name && o.domain == n.domain {
			seeds = append(seeds, ip(o.name)+":"+gossipPort)
		}
		if o.domain == n.follow {
			followSeeds = append(followSeeds, ip(o.name)+":"+gossipPort)
		}
	}
	a := []string{"-name", n.name, "-domain", n.domain, "-profile", profile, "-log", "warn",
		"-bind", ip(n.name) + ":" + gossipPort, "-seeds", strings.Join(seeds, ","),
		"-grpc", ip(n.name) + ":" + grpcPort, "-http", ip(n.name) + ":" + httpPort, "-drain-timeout", "2s"}
	if n.role == "manager" && quorum {
		nm := 0
		for _, o := range specs {
			if o.role == "manager" {
				nm++
			}
		}
		a = append(a, "-quorum", fmt.Sprint(nm))
	}
	if n.follow != "" {
		a = append(a, "-follow-domain", n.follow, "-follow-seeds", strings.Join(followSeeds, ","), "-follow-bind", ip(n.name)+":"+followPort)
	}
	if history != "" {
		a = append(a, "-history", history)
	}
	return a
}

// Binaries are the paths of the example worker and manager programs.
type Binaries struct{ Worker, Manager string }

// Build builds examples/worker and examples/manager into dir with the go
// command, from the module the working directory is in.
func Build(ctx context.Context, dir string) (Binaries, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator),
		"github.com/carbonkit/carbon/examples/worker", "github.com/carbonkit/carbon/examples/manager")
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return Binaries{}, fmt.Errorf("netlab: go build of the example binaries: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return Binaries{Worker: filepath.Join(dir, "worker"), Manager: filepath.Join(dir, "manager")}, nil
}

// HasHistoryFlag reports whether a server binary takes -history (it keeps
// its own record of what it accepted and applied).
func HasHistoryFlag(ctx context.Context, bin string) bool {
	out, _ := exec.CommandContext(ctx, bin, "-h").CombinedOutput()
	return bytes.Contains(out, []byte("-history"))
}
