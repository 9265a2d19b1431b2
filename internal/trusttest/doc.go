// Package trusttest makes trust material for the SDK's own tests: a CA for
// a test domain and Sources issued from it, failing the test on any error,
// so that a test reads as the identities it needs rather than the error
// checks of issuing them. It also serves a SPIFFE Workload API, as a SPIRE
// agent does ([StartWorkloadAPI]). Of this module it imports only package
// trust, so the tests of role, cluster, lb and their packages can all use
// it, and so can trust's external tests (package trust_test); trust's
// internal tests keep their own helpers (importing this would make a
// cycle).
package trusttest
