package cluster

import (
	"github.com/hashicorp/serf/serf"

	"github.com/carbonkit/carbon/internal/timing"
)

// serfConfig returns serf's and memberlist's timings for a profile.
func serfConfig(p Profile) *serf.Config { return timing.Serf(timing.Profile(p)) }
