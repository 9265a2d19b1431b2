package depsync

import (
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// openFile is os.OpenFile for the files of the sync path (blobs served,
// files fetched, files published). On Linux os.OpenFile spends four
// fcntl(2) and a failing epoll_ctl(2) on every regular file, trying to put
// it in the network poller; a file made with os.NewFile costs one fcntl.
// Those would be most of the system calls of opening a file, for every
// file of a revision on every node.
func openFile(name string, flag int, perm fs.FileMode) (*os.File, error) {
	for {
		fd, err := unix.Open(name, flag|unix.O_CLOEXEC, uint32(perm.Perm()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return os.NewFile(uintptr(fd), name), nil
	}
}
