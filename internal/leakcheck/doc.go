// Package leakcheck holds the goleak options for tests of serf-based
// nodes.
package leakcheck
