package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/carbonkit/carbon/role"
)

// TestSeedsUnreachableNoClaimWithoutBootstrap: a manager whose seeds do
// not answer (a typo, a host down) stays a read-only stand-by; one with
// Bootstrap elects itself after ElectionDelay; once the seed comes up the
// first one joins it and the domain has one writer.
func TestSeedsUnreachableNoClaimWithoutBootstrap(t *testing.T) {
	seed := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := func(name, seed string, bootstrap bool) Config {
		c := local("boot.test", role.Manager)
		c.NodeName, c.Seeds, c.Bootstrap = name, []string{seed}, bootstrap
		c.ElectionDelay = 300 * time.Millisecond
		return c
	}
	typo := start(t, cfg("m-typo", seed, false))
	// boot's seed is another unreachable address, so the two never meet.
	boot := start(t, cfg("m-boot", fmt.Sprintf("127.0.0.1:%d", freePort(t)), true))
	waitFor(t, 10*time.Second, "the bootstrap manager to claim alone", boot.Writable)
	// typo started first and has waited longer than boot's delay already;
	// give it three more delays, measured from boot's claim.
	deadline := time.Now().Add(3 * 300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if typo.Writable() || typo.Self().Claim != 0 {
			t.Fatal("a manager that reached no seed claimed without Bootstrap")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The seed comes up: typo joins it and an election follows.
	s := local("boot.test", role.Worker)
	s.NodeName, s.BindAddr = "w-seed", seed
	start(t, s)
	waitFor(t, 10*time.Second, "m-typo to claim once in contact", typo.Writable)
}
