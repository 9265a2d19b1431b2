package depsync

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/carbonkit/carbon/internal/depsyncpb"
)

// Errors returned by the synchronizer. Each is wrapped with the detail
// (the path, the revision, the limit) and testable with errors.Is.
var (
	// ErrNotActive is returned by Publish on a node that is not the active
	// manager of its sub-domain, or that stopped being active while it
	// published.
	ErrNotActive = errors.New("depsync: not the active manager")
	// ErrFenced is returned for a revision older than (or conflicting
	// with) the revision this node already has: a lower epoch, or the same
	// epoch and a lower sequence. The revision line never goes backwards.
	ErrFenced = errors.New("depsync: revision fenced")
	// ErrUnsafePath is returned for a manifest path that is empty,
	// absolute, not clean, or that contains a ".." element.
	ErrUnsafePath = errors.New("depsync: unsafe path")
	// ErrNotRegular is returned for a symlink, a device, a FIFO, a socket
	// or any mode beyond the permission bits, in a manifest or in a
	// published folder.
	ErrNotRegular = errors.New("depsync: not a regular file")
	// ErrDuplicatePath is returned for a manifest that lists a path twice,
	// or a path both as a file and as a directory.
	ErrDuplicatePath = errors.New("depsync: duplicate path")
	// ErrBadHash is returned for a manifest hash that is not a SHA-256, or
	// a manifest whose root hash does not match its files.
	ErrBadHash = errors.New("depsync: bad hash")
	// ErrHashMismatch is returned when a blob's content does not match the
	// hash or the size the manifest gives for it.
	ErrHashMismatch = errors.New("depsync: blob hash mismatch")
	// ErrTooLarge is returned for a file over Options.MaxFileSize, or a
	// revision over Options.MaxTotalSize or Options.MaxFiles.
	ErrTooLarge = errors.New("depsync: over the configured limits")
	// ErrNoManager is returned by Sync when no active manager is known, or
	// it has no endpoint for the synchronizer.
	ErrNoManager = errors.New("depsync: no active manager")
	// ErrRevisionFailed is returned by Sync for a revision whose deploy hook
	// failed before: it is not retried. A newer revision is.
	ErrRevisionFailed = errors.New("depsync: revision failed before")
	// ErrDeploy wraps the error of the deploy hook; the node rolled back to
	// its previous revision.
	ErrDeploy = errors.New("depsync: deploy hook failed, rolled back")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("depsync: closed")
	// ErrUnsigned: with a trust root, a revision that is not signed by the
	// active manager this node follows (no signature, a bad one, or one by
	// a certificate that is not that manager's) is refused before anything
	// is fetched.
	ErrUnsigned = errors.New("depsync: revision not signed by the active manager")
)

// Revision names one published state of the deployment folder. Revisions
// are ordered by (Epoch, Seq): Epoch is the election epoch (fencing token)
// of the manager that published it, Seq grows by one with every publish,
// across failovers too.
type Revision struct {
	// Epoch is the publishing manager's election epoch.
	Epoch uint64
	// Seq is the revision's sequence number.
	Seq uint64
	// Root is the SHA-256 of the manifest (paths, modes, sizes and hashes
	// of every file); two revisions with equal roots have equal content.
	Root [32]byte
	// Files and Size are the number of files and their total size.
	Files int
	Size  int64
}

// ID is the revision's name, "<epoch>-<seq>"; it is also the name of its
// directory under the synchronizer's revisions/ folder.
func (r Revision) ID() string {
	return strconv.FormatUint(r.Epoch, 10) + "-" + strconv.FormatUint(r.Seq, 10)
}

// String returns the ID and the first bytes of the root hash.
func (r Revision) String() string {
	return r.ID() + "/" + hex.EncodeToString(r.Root[:6])
}

// IsZero reports whether r is the zero Revision: no revision.
func (r Revision) IsZero() bool { return r.Epoch == 0 && r.Seq == 0 }

// Before reports whether r comes before o in the revision line.
func (r Revision) Before(o Revision) bool {
	if r.Epoch != o.Epoch {
		return r.Epoch < o.Epoch
	}
	return r.Seq < o.Seq
}

// sameSlot reports whether r and o have the same (epoch, seq).
func (r Revision) sameSlot(o Revision) bool { return r.Epoch == o.Epoch && r.Seq == o.Seq }

func parseID(id string) (epoch, seq uint64, ok bool) {
	a, b, found := strings.Cut(id, "-")
	if !found {
		return 0, 0, false
	}
	e, err1 := strconv.ParseUint(a, 10, 64)
	s, err2 := strconv.ParseUint(b, 10, 64)
	return e, s, err1 == nil && err2 == nil
}

// File is one regular file of a revision.
type File struct {
	// Path is relative and slash-separated, without "." or ".." elements.
	Path string
	// Mode holds the permission bits only.
	Mode fs.FileMode
	// Size is the file's length in bytes.
	Size int64
	// SHA256 is the hash of the file's content.
	SHA256 [32]byte
}

// manifest is a revision and its files sorted by path.
type manifest struct {
	rev   Revision
	files []File
	// With a trust root: the publisher's chain and signature.
	chain [][]byte
	sig   []byte
}

// rootHash is the SHA-256 of the canonical encoding of files (sorted by
// path): a version tag, then per file its path, a NUL, mode, size and hash.
func rootHash(files []File) [32]byte {
	h := sha256.New()
	h.Write([]byte("carbon-depsync-v1\n"))
	var buf [12]byte
	for _, f := range files {
		h.Write([]byte(f.Path))
		h.Write([]byte{0})
		binary.BigEndian.PutUint32(buf[:4], uint32(f.Mode))
		binary.BigEndian.PutUint64(buf[4:], uint64(f.Size))
		h.Write(buf[:])
		h.Write(f.SHA256[:])
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// limits are the size limits a manifest must respect.
type limits struct {
	maxFile, maxTotal int64
	maxFiles          int
}

// checkPath validates one manifest path.
func checkPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%w: empty path", ErrUnsafePath)
	case strings.HasPrefix(p, "/") || len(p) >= 2 && p[1] == ':':
		return fmt.Errorf("%w: %q is absolute", ErrUnsafePath, p)
	case strings.Contains(p, "\\"):
		return fmt.Errorf("%w: %q contains a backslash", ErrUnsafePath, p)
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("%w: %q contains NUL", ErrUnsafePath, p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return fmt.Errorf("%w: %q contains \"..\"", ErrUnsafePath, p)
		}
	}
	if path.Clean(p) != p || p == "." {
		return fmt.Errorf("%w: %q is not clean (want %q)", ErrUnsafePath, p, path.Clean(p))
	}
	return nil
}

// checkMode validates a manifest mode: permission bits only.
func checkMode(p string, m fs.FileMode) error {
	if m&^fs.ModePerm != 0 {
		return fmt.Errorf("%w: %q has mode %v", ErrNotRegular, p, m)
	}
	return nil
}

// validate checks files (any order) against the rules and the limits and
// returns them sorted by path. It touches nothing on disk.
func validate(files []File, lim limits) ([]File, error) {
	if lim.maxFiles > 0 && len(files) > lim.maxFiles {
		return nil, fmt.Errorf("%w: %d files, the limit is %d", ErrTooLarge, len(files), lim.maxFiles)
	}
	sorted := make([]File, len(files))
	copy(sorted, files)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	var total int64
	seen := make(map[string]bool, len(sorted))
	for _, f := range sorted {
		if err := checkPath(f.Path); err != nil {
			return nil, err
		}
		if err := checkMode(f.Path, f.Mode); err != nil {
			return nil, err
		}
		if f.Size < 0 {
			return nil, fmt.Errorf("%w: %q has size %d", ErrTooLarge, f.Path, f.Size)
		}
		if lim.maxFile > 0 && f.Size > lim.maxFile {
			return nil, fmt.Errorf("%w: %q is %d bytes, the limit is %d", ErrTooLarge, f.Path, f.Size, lim.maxFile)
		}
		total += f.Size
		if total < 0 || lim.maxTotal > 0 && total > lim.maxTotal {
			return nil, fmt.Errorf("%w: total over %d bytes at %q", ErrTooLarge, lim.maxTotal, f.Path)
		}
		if seen[f.Path] {
			return nil, fmt.Errorf("%w: %q", ErrDuplicatePath, f.Path)
		}
		seen[f.Path] = true
	}
	// A path may not be both a file and a directory ("a" and "a/b").
	for _, f := range sorted {
		for dir := path.Dir(f.Path); dir != "."; dir = path.Dir(dir) {
			if seen[dir] {
				return nil, fmt.Errorf("%w: %q is a file and the directory of %q", ErrDuplicatePath, dir, f.Path)
			}
		}
	}
	return sorted, nil
}

// fromProto converts and validates a manifest received from a peer.
func fromProto(pm *depsyncpb.RevisionManifest, lim limits) (*manifest, error) {
	if lim.maxFiles > 0 && len(pm.GetFiles()) > lim.maxFiles {
		return nil, fmt.Errorf("%w: %d files, the limit is %d", ErrTooLarge, len(pm.GetFiles()), lim.maxFiles)
	}
	files := make([]File, 0, len(pm.GetFiles()))
	for _, pf := range pm.GetFiles() {
		if len(pf.GetSha256()) != sha256.Size {
			return nil, fmt.Errorf("%w: %q has a %d-byte hash, want %d", ErrBadHash, pf.GetPath(), len(pf.GetSha256()), sha256.Size)
		}
		if pf.GetSize() > 1<<62 {
			return nil, fmt.Errorf("%w: %q is %d bytes", ErrTooLarge, pf.GetPath(), pf.GetSize())
		}
		f := File{Path: pf.GetPath(), Mode: fs.FileMode(pf.GetMode()), Size: int64(pf.GetSize())}
		copy(f.SHA256[:], pf.GetSha256())
		files = append(files, f)
	}
	sorted, err := validate(files, lim)
	if err != nil {
		return nil, err
	}
	m := &manifest{files: sorted, chain: pm.GetPublisherChain(), sig: pm.GetSignature()}
	m.rev = Revision{Epoch: pm.GetEpoch(), Seq: pm.GetSeq(), Root: rootHash(sorted), Files: len(sorted)}
	for _, f := range sorted {
		m.rev.Size += f.Size
	}
	if len(pm.GetRoot()) != sha256.Size || [32]byte(pm.GetRoot()) != m.rev.Root {
		return nil, fmt.Errorf("%w: root of revision %s does not match its files", ErrBadHash, m.rev.ID())
	}
	return m, nil
}

// toProto encodes m.
func (m *manifest) toProto() *depsyncpb.RevisionManifest {
	pm := &depsyncpb.RevisionManifest{Epoch: m.rev.Epoch, Seq: m.rev.Seq, Root: m.rev.Root[:], PublisherChain: m.chain, Signature: m.sig}
	pm.Files = make([]*depsyncpb.File, len(m.files))
	for i, f := range m.files {
		pm.Files[i] = &depsyncpb.File{Path: f.Path, Mode: uint32(f.Mode), Size: uint64(f.Size), Sha256: f.SHA256[:]}
	}
	return pm
}

func infoOf(r Revision) *depsyncpb.RevisionInfo {
	if r.IsZero() {
		return &depsyncpb.RevisionInfo{}
	}
	return &depsyncpb.RevisionInfo{Epoch: r.Epoch, Seq: r.Seq, Root: r.Root[:], Files: uint64(r.Files), Size: uint64(r.Size)}
}

func revOf(in *depsyncpb.RevisionInfo) (Revision, error) {
	r := Revision{Epoch: in.GetEpoch(), Seq: in.GetSeq(), Files: int(in.GetFiles()), Size: int64(in.GetSize())}
	if r.IsZero() {
		return Revision{}, nil
	}
	if len(in.GetRoot()) != sha256.Size {
		return Revision{}, fmt.Errorf("%w: revision %s has a %d-byte root", ErrBadHash, r.ID(), len(in.GetRoot()))
	}
	r.Root = [32]byte(in.GetRoot())
	return r, nil
}
