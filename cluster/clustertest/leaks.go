package clustertest

import (
	"time"

	"go.uber.org/goleak"
)

// FindLeaks is goleak.Find retried for up to 5 s: memberlist's timers
// (suspicion, indirect probes) outlive its Shutdown by up to a probe
// timeout, which on a loaded host under -race is longer than goleak's
// own half-second of retries. Tests can use it in TestMain.
func FindLeaks(opts ...goleak.Option) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := goleak.Find(opts...)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond) // goleak has already retried; back off
	}
}
