package patterns

import (
	"context"
	"errors"

	"github.com/carbonkit/carbon/examples/internal/gateway"
)

func startNginx(ctx context.Context, opts Options, name string, reads gateway.Route, writes *gateway.Route) (balancer, error) {
	return nil, errors.New("patterns: nginx balancers not implemented yet")
}
