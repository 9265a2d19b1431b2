//go:build linux

package netlab

import (
	"fmt"
	"os"
	"testing"

	"github.com/carbonkit/carbon/cluster/clustertest"
)

// TestMain checks for goroutine leaks once the tests pass: a lab must leave
// nothing running (its spawner thread, dialers, HTTP connections).
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := clustertest.FindLeaks(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
