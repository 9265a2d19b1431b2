//go:build race

package role_test

// raceEnabled skips allocation counts, which the race detector perturbs.
const raceEnabled = true
