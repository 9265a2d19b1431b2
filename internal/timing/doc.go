// Package timing holds the serf and memberlist timings of each profile, in
// one place for package cluster and for the baselines its benchmarks run
// on raw serf.
package timing
