//go:build race

package memnet

// slowdown stretches memberlist's timings in tests under the race
// detector, which makes memberlist several times slower: at the fast
// timings a cluster of tens of nodes misses its probe timeouts, suspects
// healthy nodes, and the refutations feed the overload.
const slowdown = 5
