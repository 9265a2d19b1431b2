// Package flagenv defines the command-line flags that every carbon program
// shares (the example servers, the gateway, the carbon CLI), each with an
// environment variable: CARBON_ + the flag name in upper case, '-' as '_'.
// A flag on the command line wins over its variable. Sharing the
// definitions keeps the names, defaults and help texts the same everywhere.
package flagenv
