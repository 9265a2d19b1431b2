// Package cli holds the flags the example binaries share. Every flag can
// also be set by an environment variable (CARBON_ + the flag name in upper
// case, '-' as '_'); a flag on the command line wins over the variable.
package cli
