package depsync

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncStore makes everything written under root durable. On Linux that is
// one syncfs(2) of root's file system (Options.Dir must be one file
// system): cheaper than an fsync per file, and it covers the blobs, the
// tree's links and directories and the manifest alike.
func syncStore(root, _ string) error {
	d, err := os.Open(root)
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Syncfs(int(d.Fd()))
}
