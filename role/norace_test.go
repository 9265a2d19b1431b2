//go:build !race

package role_test

const raceEnabled = false
