// Package lb balances a node's calls across its peers, for gRPC and HTTP,
// without an external balancer: reads to the workers of a sub-domain,
// writes to the active manager.
//
// grpc-go's own policies know nothing of domains, sub-domains, roles,
// serving state or the active manager; this package feeds them from a
// [cluster.Node]'s views.
//
// # Entry points
//
//   - [Dial] returns a *grpc.ClientConn to the routable members of a
//     sub-domain (alive, serving, not observers) at their "grpc" endpoint.
//   - [NewRouter] sends each method to a reads or a writes connection by the
//     same classifier as the role Guard, and retries once a write refused
//     as read-only by a manager that was picked from a stale view.
//   - [NewProxy] is a transparent gRPC proxy for gateways: any service, all
//     four stream kinds, messages forwarded as raw bytes, reads to the
//     workers and writes to the managers by descriptor or rule, a method
//     it cannot place refused; serve it with [Proxy.ServerOptions].
//   - [NewTransport] is an http.RoundTripper that picks a member per request;
//     [NewReverseProxy] puts it behind an httputil.ReverseProxy for gateways.
//
// # Policies
//
// [LeastLoaded] (the default) is power-of-two-choices over in-flight calls
// and an EWMA of latency; [RoundRobin] is weighted round robin;
// [ConsistentHash] keeps calls with the same [WithKey] key on one member
// (a joining member takes about 1/N of the keys) with bounded load;
// [ActiveFirst] sends to the active manager, then the stand-bys by name;
// [Nearest] sends to the lowest round-trip time given by [WithRTT]. Weights
// come from a member property ([WithWeightProperty]); a member that becomes
// serving after the balancer started is slowly started ([WithSlowStart]).
// The same policy code picks for gRPC and for HTTP.
//
// Outlier ejection needs no xDS: a member that fails [Ejection].Consecutive
// calls in a row is left out for a backoff that doubles with each recent
// ejection, and no more than a share of the members is ejected at once.
//
// # How it plugs into grpc-go (no globals)
//
// Connections and their health are grpc-go's: our balancers are
// endpointsharding over one pick_first child per member, as grpc-go's
// round_robin and least_request are, and our picker only chooses among the
// ready children.
//
// grpc-go finds balancers only in its process-wide registry. We register
// stateless builders, named "carbon_" + the policy name, once, the first
// time Dial needs them (never in init), and no state lives in them: every
// Dial builds its own resolver, passed with grpc.WithResolvers under the
// scheme "carbon" (so nothing is registered for it globally), and its own
// service config naming the policy. Per-Dial state (options, member
// statistics, ejections, metrics) travels in the resolver's attributes
// under a key type of this package. Two Nodes in one process, or two Dials
// of one Node, never share anything.
//
// # Promises
//
//   - A member that fails, leaves, drains or stops serving gets no new
//     calls once the Node's view shows it; calls in flight are not cut.
//   - Pickers never block and do not allocate (the Done callbacks are
//     bound once per member). A pick reads no clock: ejections end by a
//     timer, slow-start shares are computed when the picker is built and
//     raised by a timer, and the age of a latency sample is told by the
//     newest clock reading. Only the calls that measure latency read the
//     clock (at their pick and Done): one per member in flight, about one
//     per member per millisecond at high call rates, most calls at low
//     ones. Metrics are counted in atomics and exported by an observable
//     callback.
//   - Nothing runs in the background but the resolver of each Dial, which
//     ends when the connection is closed, and timers (no goroutine until
//     they fire) that end ejections and raise slow-start shares; closing
//     the connection (or the Transport) stops them.
//
// # Performance
//
// BenchmarkPick measures a pick and its Done over fake connections next to
// grpc-go's round_robin picker in the same run (x_round_robin is the
// ratio). Every picker allocates nothing per pick; the figures are in
// docs/PERFORMANCE.md.
//
// # What it does not do
//
//   - It does not retry calls in general; the Router's one retry of a
//     read-only rejection, the Transport's one retry of an idempotent
//     HTTP request after a connection failure ([WithRetryIf] narrows it)
//     and the Proxy's opt-in retry of single-request reads
//     ([ProxyRetryReads]) are the only ones. Client-streaming and bidi
//     calls are routed but never retried.
//   - It does not measure network coordinates itself: [Nearest] asks
//     [WithRTT].
//   - Without a trust root on the Node, Dial uses insecure transport
//     credentials unless [WithDialOptions] gives others; with one, it runs
//     mutual TLS and checks each member's certificate against its name.
//
// # Metrics
//
// Observable counters per member (attributes "member", "sub_domain",
// "transport"): [MetricPicks], [MetricErrors], [MetricEjections], and the
// gauge [MetricInFlight], through the meter provider of [WithMeterProvider].
package lb
