package main

import (
	"os"

	"github.com/carbonkit/carbon/examples/internal/cli"
	"github.com/carbonkit/carbon/role"
)

func main() {
	os.Exit(cli.Serve("manager", role.Manager, os.Args[1:], os.Stdout, os.Stderr))
}
