package patterns

import (
	"context"

	"github.com/carbonkit/carbon/examples/internal/gateway"
	"github.com/carbonkit/carbon/examples/internal/nginxlb"
)

// startNginx starts a real Nginx as a balancer, its upstreams kept by
// lb/nginx controllers on the route's observer Nodes.
func startNginx(ctx context.Context, opts Options, name string, reads gateway.Route, writes *gateway.Route) (balancer, error) {
	return nginxlb.Start(ctx, nginxlb.Config{Bin: opts.Nginx, Reads: reads, Writes: writes, Logger: opts.Logger.With("balancer", name)})
}
