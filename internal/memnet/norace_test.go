//go:build !race

package memnet

// slowdown stretches memberlist's timings in tests; see race_test.go.
const slowdown = 1
