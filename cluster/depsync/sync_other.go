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
		return syncDir(p)
	})
	if err != nil {
		return err
	}
	for _, d := range []string{"blobs", "revisions", "manifests", ""} {
		if err := syncDir(filepath.Join(root, d)); err != nil {
			return err
		}
	}
	return nil
}

// spreadDirs does nothing where ext4's top-directory hint is not at hand.
func spreadDirs(string) {}

// startWriteback does nothing where sync_file_range(2) is not at hand: the
// flush before a switch (syncStore) then writes everything.
func startWriteback(*os.File) {}
