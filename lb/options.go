package lb

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// ErrInvalidOption is wrapped by every error about a bad Option; the message
// names the option.
var ErrInvalidOption = errors.New("lb: invalid option")

// ErrNoMembers is returned (as a gRPC Unavailable status on a channel) when
// the sub-domain has no routable member with the endpoint.
var ErrNoMembers = errors.New("lb: no routable member")

// Policy chooses a member for each call.
type Policy int

const (
	// LeastLoaded (the default) is power-of-two-choices: two random members,
	// the one with the lower (in-flight+1) × EWMA latency ÷ weight wins. A
	// member whose latency was last measured over 5 s ago counts as fast
	// until measured again, so one that was slow (a cold start) gets probed
	// and, if it is fast now, its share back.
	LeastLoaded Policy = iota
	// RoundRobin cycles through the members, in proportion to their weights.
	RoundRobin
	// ConsistentHash sends calls that carry the same key ([WithKey]) to the
	// same member, with bounded load: a member with more than c times the
	// average in-flight calls passes the key on to the next member of the
	// ring. Calls without a key are balanced as by LeastLoaded.
	ConsistentHash
	// ActiveFirst sends every call to the active manager of the sub-domain,
	// and to the stand-bys in name order when it cannot be reached.
	ActiveFirst
	// Nearest sends calls to the member with the lowest round-trip time as
	// given by [WithRTT] (serf's network coordinates), passing on to the next
	// nearest when it carries more than its bounded share of load.
	Nearest
)

var policyNames = [...]string{"least_loaded", "round_robin", "hash", "active_first", "nearest"}

// String returns the policy's name: "least_loaded", "round_robin", "hash",
// "active_first" or "nearest".
func (p Policy) String() string {
	if p < 0 || int(p) >= len(policyNames) {
		return fmt.Sprintf("Policy(%d)", int(p))
	}
	return policyNames[p]
}

// balancerName is the name of the policy's grpc balancer.
func (p Policy) balancerName() string { return "carbon_" + p.String() }

// Ejection configures outlier ejection: a member that fails Consecutive
// calls in a row is left out of picks for BaseTime×2^k (k counting its
// recent ejections), at most MaxTime, and never more than MaxEjectedPercent
// of the members at once.
type Ejection struct {
	// Consecutive is the number of failures in a row that ejects a member.
	// Default 5; negative disables ejection.
	Consecutive int
	// BaseTime is the first ejection's length. Default 1 s.
	BaseTime time.Duration
	// MaxTime caps an ejection's length. Default 30 s. A member not ejected
	// for MaxTime after its return starts again from BaseTime.
	MaxTime time.Duration
	// MaxEjectedPercent caps the share of members ejected at once
	// (rounded down). Default 50.
	MaxEjectedPercent int
	// Codes are the gRPC status codes that count as failures. Default
	// Unavailable (which also covers connection failures).
	Codes []codes.Code
	// HTTPStatus are the HTTP status codes that count as failures, besides
	// transport errors. Default 502, 503 and 504.
	HTTPStatus []int
}

// Option configures Dial, NewTransport and NewReverseProxy.
type Option func(*options)

type options struct {
	policy      Policy
	endpoint    string
	endpointSet bool
	weightProp  string
	slowStart   time.Duration
	loadFactor  float64
	ejection    Ejection
	rtt         func(member string) (time.Duration, bool)
	dialOpts    []grpc.DialOption
	mp          metric.MeterProvider
	logger      *slog.Logger
	base        http.RoundTripper
	requestKey  func(*http.Request) string
	retryIf     func(*http.Request) bool
	clock       func() int64
	rand        func() uint64
	afterFunc   func(time.Duration, func()) (stop func() bool)
	errs        []error
}

// WithPolicy sets the balancing policy. Default LeastLoaded.
func WithPolicy(p Policy) Option {
	return func(o *options) {
		if p < 0 || int(p) >= len(policyNames) {
			o.errs = append(o.errs, fmt.Errorf("%w: WithPolicy: unknown policy %d", ErrInvalidOption, int(p)))
			return
		}
		o.policy = p
	}
}

// WithEndpoint names the member endpoint to connect to: "grpc" by default
// for Dial, "http" for NewTransport and NewReverseProxy.
func WithEndpoint(name string) Option {
	return func(o *options) {
		if name == "" {
			o.errs = append(o.errs, fmt.Errorf("%w: WithEndpoint: empty endpoint name", ErrInvalidOption))
			return
		}
		o.endpoint, o.endpointSet = name, true
	}
}

// WithWeightProperty names the member property holding the member's weight,
// a positive number (default property "weight"; a missing or bad value
// means 1, values are capped at 100). "" ignores weights.
func WithWeightProperty(name string) Option {
	return func(o *options) { o.weightProp = name }
}

// WithSlowStart sets how long a member that became serving after the
// balancer started takes to reach its full share of RoundRobin and
// LeastLoaded picks; its share grows linearly from 10%. Default 10 s; 0
// turns slow start off.
func WithSlowStart(d time.Duration) Option {
	return func(o *options) {
		if d < 0 {
			o.errs = append(o.errs, fmt.Errorf("%w: WithSlowStart: negative duration %v", ErrInvalidOption, d))
			return
		}
		o.slowStart = d
	}
}

// WithLoadFactor sets the bound c of ConsistentHash and Nearest: a member
// takes a call while its in-flight calls stay at or below c × the average.
// Default 1.25; it must be above 1.
func WithLoadFactor(c float64) Option {
	return func(o *options) {
		if !(c > 1) {
			o.errs = append(o.errs, fmt.Errorf("%w: WithLoadFactor: %v is not above 1", ErrInvalidOption, c))
			return
		}
		o.loadFactor = c
	}
}

// WithEjection configures outlier ejection; zero fields take their
// defaults (see [Ejection]).
func WithEjection(e Ejection) Option {
	return func(o *options) {
		if e.MaxEjectedPercent < 0 || e.MaxEjectedPercent > 100 {
			o.errs = append(o.errs, fmt.Errorf("%w: WithEjection: MaxEjectedPercent %d is not in 0..100", ErrInvalidOption, e.MaxEjectedPercent))
			return
		}
		if e.BaseTime < 0 || e.MaxTime < 0 {
			o.errs = append(o.errs, fmt.Errorf("%w: WithEjection: negative BaseTime or MaxTime", ErrInvalidOption))
			return
		}
		o.ejection = e
	}
}

// WithRTT gives the Nearest policy the estimated round-trip time to a member
// by name, for example from serf's network coordinates. It is asked when
// the member list or a connection changes, never on a pick; a member it
// knows nothing of sorts last.
func WithRTT(rtt func(member string) (time.Duration, bool)) Option {
	return func(o *options) { o.rtt = rtt }
}

// WithDialOptions adds grpc.DialOptions to Dial, after its own (insecure
// transport credentials, the resolver and the service config), so that
// they may replace the credentials.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOpts = append(o.dialOpts, opts...) }
}

// WithMeterProvider sets where the balancer's metrics go. Default
// otel.GetMeterProvider() when the balancer is built.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) { o.mp = mp }
}

// WithLogger sets the logger. Default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithHTTPTransport sets the RoundTripper NewTransport sends requests with,
// once it has chosen the member. Default a clone of http.DefaultTransport.
func WithHTTPTransport(rt http.RoundTripper) Option {
	return func(o *options) { o.base = rt }
}

// WithRequestKey makes NewTransport take the ConsistentHash key of a request
// from f (a tenant header, for example) when its context carries none.
func WithRequestKey(f func(*http.Request) string) Option {
	return func(o *options) { o.requestKey = f }
}

// WithRetryIf narrows which requests NewTransport may send once more to
// another member after a connection failure: only those f accepts, among
// the ones it would retry anyway (idempotent, with a body it can have
// again). A gateway passes its classifier's IsReadRequest so that writes
// are never retried, not even an idempotent PUT or DELETE.
func WithRetryIf(f func(*http.Request) bool) Option {
	return func(o *options) { o.retryIf = f }
}

func buildOptions(defEndpoint string, opts []Option) (*options, error) {
	o := &options{
		policy:     LeastLoaded,
		endpoint:   defEndpoint,
		weightProp: "weight",
		slowStart:  10 * time.Second,
		loadFactor: 1.25,
	}
	for _, f := range opts {
		if f != nil {
			f(o)
		}
	}
	if len(o.errs) > 0 {
		return nil, errors.Join(o.errs...)
	}
	e := &o.ejection
	if e.Consecutive == 0 {
		e.Consecutive = 5
	}
	if e.BaseTime == 0 {
		e.BaseTime = time.Second
	}
	if e.MaxTime == 0 {
		e.MaxTime = 30 * time.Second
	}
	if e.MaxTime < e.BaseTime {
		e.MaxTime = e.BaseTime
	}
	if e.MaxEjectedPercent == 0 {
		e.MaxEjectedPercent = 50
	}
	if e.Codes == nil {
		e.Codes = []codes.Code{codes.Unavailable}
	}
	if e.HTTPStatus == nil {
		e.HTTPStatus = []int{http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}
	}
	if o.mp == nil {
		o.mp = otel.GetMeterProvider()
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	if o.clock == nil {
		o.clock = monotonic
	}
	if o.afterFunc == nil {
		o.afterFunc = afterFunc
	}
	return o, nil
}

// withSeams replaces the clock, the random source and the timers (tests).
func withSeams(clock func() int64, rnd func() uint64, after func(time.Duration, func()) func() bool) Option {
	return func(o *options) { o.clock, o.rand, o.afterFunc = clock, rnd, after }
}
