//go:build !linux

package main

import (
	"fmt"
	"os"
)

// The lab runs nodes in Linux network namespaces; elsewhere it only says so.
func main() {
	fmt.Fprintln(os.Stderr, "netlab: the fault lab needs Linux (network namespaces, the ip command and root)")
	os.Exit(2)
}
