//go:build linux

package netlab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// ErrUnavailable is wrapped by Check when the lab cannot run here.
var ErrUnavailable = errors.New("netlab: unavailable")

// Require reports whether the lab can run: it needs root (to make network
// namespaces) and the ip command. The error says in one line what is
// missing; tests skip with it.
func Require() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: needs root to create network namespaces", ErrUnavailable)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("%w: needs the ip command (iproute2) on PATH", ErrUnavailable)
	}
	return nil
}
