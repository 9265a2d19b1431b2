//go:build race

package memnet

// slowdown stretches memberlist's timings in tests under the race
// detector, which makes memberlist several times slower: at the fast
// timings a 50-node cluster on two cores misses its 50ms probe timeouts,
// suspects healthy nodes, and the refutations feed the overload.
const slowdown = 5
