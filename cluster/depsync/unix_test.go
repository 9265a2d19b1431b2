package depsync_test

import (
	"crypto/sha256"
	"syscall"
)

func mkfifo(p string) error { return syscall.Mkfifo(p, 0o644) }

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }
