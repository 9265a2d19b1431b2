// Package trusttest makes trust material for the SDK's own tests: a CA for
// a test domain and Sources issued from it, failing the test on any error,
// so that a test reads as the identities it needs rather than the error
// checks of issuing them. It imports only package trust, so the tests of
// role, cluster, lb and their packages can all use it; trust's own tests
// keep their helpers (importing this would make a cycle).
package trusttest
