//go:build !linux

package depsync

import (
	"io/fs"
	"os"
	"path/filepath"
)

// syncStore makes the tree at dir durable, where there is no syncfs(2): an
// fsync of every file and directory of the tree (whose regular files are
// the blobs' links or copies), then of the store's directories.
func syncStore(root, dir string) error {
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return fsyncPath(p)
	})
	if err != nil {
		return err
	}
	for _, d := range []string{"blobs", "revisions", "manifests", ""} {
		if err := fsyncPath(filepath.Join(root, d)); err != nil {
			return err
		}
	}
	return nil
}

func fsyncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// spreadDirs is a no-op where the file system has no such hint.
func spreadDirs(string) {}

// startWriteback is a no-op where there is no sync_file_range(2).
func startWriteback(*os.File) {}
