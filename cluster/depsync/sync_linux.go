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

// spreadDirs asks the file system to place each directory made in dir in a
// block group of its own choosing, with free inodes to spare (ext4's
// "top directory" flag, chattr +T; other file systems ignore it or refuse,
// which is harmless). A revision's tree is made in tmp/: without the flag
// its files are allocated next to the trees just deleted, and ext4 without
// a journal then skips every recently freed inode one by one.
func spreadDirs(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	defer d.Close()
	fl, err := unix.IoctlGetUint32(int(d.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil || fl&fsTopdirFl != 0 {
		return
	}
	unix.IoctlSetPointerInt(int(d.Fd()), unix.FS_IOC_SETFLAGS, int(fl|fsTopdirFl))
}

// fsTopdirFl is FS_TOPDIR_FL of linux/fs.h.
const fsTopdirFl = 0x00020000

// startWriteback starts writing f's dirty pages to disk without waiting,
// so that the flush before a switch (syncStore) finds most of the
// revision already written.
func startWriteback(f *os.File) {
	unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
}
