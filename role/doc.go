// Package role holds the roles of a Carbon-style cluster and enforces
// read-only mode on the nodes that must not write.
//
// # Roles
//
// A [Worker] serves client requests and is read-only: it may load artifacts
// and read configuration, never change them. A [Manager] deploys and
// configures artifacts; in Active/Passive mode only the active manager of a
// sub-domain is writable, the stand-bys are read-only until they take over.
// An observer (role [None]) sees a domain but never serves it.
//
// # State
//
// Everything in this package reads a small [State] interface (Role and
// Writable) rather than a cluster node, so that role stays a leaf package:
// *cluster.Node implements State, and [Static] gives a fixed State for a
// single server or a test. A node may write only when its Role is
// [Manager] and Writable reports true; a worker or an observer never
// writes, whatever its State says.
//
// # The Guard
//
// A [Guard] enforces read-only mode on a server: [Guard.UnaryServerInterceptor]
// and [Guard.StreamServerInterceptor] for gRPC, [Guard.HTTP] for HTTP, and
// [Guard.CheckWrite] for write paths no request passes through (a job, a
// consumer). It asks the State on every call and caches nothing about it,
// so a passive manager that becomes active takes writes from its next call
// on, and one that steps down stops: a write stream is checked again on
// every message it receives.
//
// [ManagerOnly] mounts what only managers serve, such as the management
// console: other nodes answer 404, as if it did not exist. It looks at the
// role, not at writability, so a stand-by manager shows its console; wrap
// the console in a Guard to make it read-only there.
//
// # Reads and writes
//
// The rules are default-deny: what is not shown to be a read is a write.
// A [Classifier] applies them, and can be shared ([WithClassifier]) with a
// client-side router that sends writes to the active manager.
//
// A gRPC method is a read if it belongs to health (grpc.health.v1.Health),
// reflection (grpc.reflection.*) or channelz (grpc.channelz.v1.Channelz),
// if a rule says so ([WithReadMethods] patterns such as "/pkg.Svc/Get*",
// or any [selector.Matcher] with [WithReadRule]), or if its proto declares
//
//	option idempotency_level = NO_SIDE_EFFECTS;
//
// as found in protoregistry.GlobalFiles or the registry of
// [WithDescriptors]. Every other method is a write, unknown ones included;
// IDEMPOTENT is a write too, since repeating a write is still writing. The
// verdict is computed on a method's first call and cached, so a read costs
// one map lookup and no allocation.
//
// An HTTP request is a read if its method is GET, HEAD or OPTIONS, every
// method it claims through X-HTTP-Method-Override, X-HTTP-Method,
// X-Method-Override or a _method query parameter is one too (frameworks
// route on those claims, so a GET that claims DELETE reaches a delete
// handler; a POST that claims GET stays a write), and it is not an upgrade
// (WebSocket, h2c). CONNECT, TRACE and all other methods are writes.
// [WithHTTPReadRule] declares endpoints that only read although their
// method says otherwise (a POST search, a GraphQL query endpoint, a
// WebSocket feed), and [WithHTTPReadMatcher] takes any [HTTPMatcher]. The
// Guard never reads a request body: a _method field in a form body only
// matters to frameworks that honour it on a POST, which is a write
// already. See [Classifier.IsReadRequest] for the details.
//
// # Errors
//
// A rejected gRPC write ends with codes.FailedPrecondition, not
// PermissionDenied or Unavailable: the caller may make the call, and the
// node is up, but it is not in the state the call needs; the same call to
// the active manager succeeds. The status carries an
// [errdetails.ErrorInfo] with Reason [ReasonReadOnly] ("READ_ONLY_NODE"),
// Domain [ErrorDomain] ("carbon.carbonkit.dev") and Metadata "domain" (the
// cluster domain, when the State is a [DomainReporter]), "role", and
// "active" (see below). [IsReadOnly] recognises it on a client, and
// [AsReadOnly] reads it back.
//
// A rejected HTTP write is 403 Forbidden with an RFC 9457
// application/problem+json body of type [ProblemType], whose extension
// members "reason", "domain", "role" and "active" mirror the ErrorInfo.
//
// On the server, every rejection is a [*ReadOnlyError] wrapping
// [ErrReadOnly], for errors.Is; returned from a gRPC handler, it becomes
// the same status.
//
// The address of the active manager is disclosed ("active") only with
// [WithActiveDisclosure], and only if the State is an [ActiveReporter]:
// managers often sit behind an internal firewall whose addresses clients
// should not learn.
//
// # Metrics
//
// The Guard counts rejected writes in [MetricRejected], through the
// OpenTelemetry API ([WithMeterProvider], default otel.GetMeterProvider),
// with attributes "role" and "method". Reads are not counted, and cost no
// allocation.
//
// [selector.Matcher]: https://pkg.go.dev/github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector#Matcher
// [errdetails.ErrorInfo]: https://pkg.go.dev/google.golang.org/genproto/googleapis/rpc/errdetails#ErrorInfo
package role
