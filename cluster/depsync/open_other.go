//go:build !linux

package depsync

import (
	"io/fs"
	"os"
)

// openFile is os.OpenFile (see open_linux.go for why Linux differs).
func openFile(name string, flag int, perm fs.FileMode) (*os.File, error) {
	return os.OpenFile(name, flag, perm)
}
