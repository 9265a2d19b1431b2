package depsync

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/carbonkit/carbon/internal/depsyncpb"
)

// store is the on-disk state of one node, under its root directory:
//
//	blobs/<sha256 hex>       content-addressed blobs, which appear complete:
//	                         linked from a verified tree file, or renamed
//	                         from partial/ or a publish's directory in tmp/
//	partial/<sha256 hex>     a blob whose transfer stopped; the next attempt
//	                         resumes it
//	manifests/<id>.pb        the manifests of the kept revisions
//	failed/<id>              revisions whose deploy hook failed
//	revisions/<id>/          the tree of a revision (see build)
//	current -> revisions/<id>  the deployment folder, switched by rename
//	tmp/                     trees being built, publishes; emptied on open
//
// The store is not safe for concurrent writes: the Syncer serializes them.
// Reads of blobs (serving peers) may run concurrently with writes because
// every blob appears under its name complete.
type store struct {
	root string
}

// blobMode is the mode of blob files; tree files of this mode are hard
// links to their blob, others are copies.
const blobMode fs.FileMode = 0o644

func openStore(root string) (*store, error) {
	s := &store{root: root}
	for _, d := range []string{"blobs", "partial", "manifests", "failed", "revisions", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, fmt.Errorf("depsync: %w", err)
		}
	}
	spreadDirs(filepath.Join(root, "tmp"))
	// Trees half built by a crashed process are garbage.
	ents, err := os.ReadDir(filepath.Join(root, "tmp"))
	if err != nil {
		return nil, fmt.Errorf("depsync: %w", err)
	}
	for _, e := range ents {
		if err := removeAll(filepath.Join(root, "tmp", e.Name())); err != nil {
			return nil, fmt.Errorf("depsync: cleaning tmp: %w", err)
		}
	}
	return s, nil
}

func (s *store) blobPath(sum [32]byte) string {
	return filepath.Join(s.root, "blobs", hex.EncodeToString(sum[:]))
}

func (s *store) partialPath(sum [32]byte) string {
	return filepath.Join(s.root, "partial", hex.EncodeToString(sum[:]))
}

// partialSet is what partial/ held when a fetch started.
type partialSet struct {
	sums map[[32]byte]bool
	all  bool // partial/ could not be listed: any blob may be there
}

func (p partialSet) mayHave(sum [32]byte) bool { return p.all || p.sums[sum] }

// partials lists partial/ once, so that a fetch looks there only for the
// blobs an earlier attempt left, not for every blob it lacks.
func (s *store) partials() partialSet {
	ents, err := os.ReadDir(filepath.Join(s.root, "partial"))
	if err != nil {
		return partialSet{all: true}
	}
	p := partialSet{sums: make(map[[32]byte]bool, len(ents))}
	for _, e := range ents {
		if b, err := hex.DecodeString(e.Name()); err == nil && len(b) == sha256.Size {
			p.sums[[32]byte(b)] = true
		}
	}
	return p
}

func (s *store) treePath(id string) string { return filepath.Join(s.root, "revisions", id) }

func (s *store) currentPath() string { return filepath.Join(s.root, "current") }

func (s *store) hasBlob(sum [32]byte) bool {
	fi, err := os.Stat(s.blobPath(sum))
	return err == nil && fi.Mode().IsRegular()
}

// hasFile reports whether the blob of f is in the store with f's size. A
// blob of another size (cut short by a crash before the revision that
// brought it was flushed) is removed, to be fetched again.
func (s *store) hasFile(f File) bool {
	fi, err := os.Stat(s.blobPath(f.SHA256))
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	if fi.Size() != f.Size {
		os.Remove(s.blobPath(f.SHA256))
		return false
	}
	return true
}

// build makes revisions/<id>/ exactly the tree of m, from blobs that must
// all be present, durably (see build.commit).
func (s *store) build(m *manifest) (string, error) {
	b, err := s.newBuild(m)
	if err != nil {
		return "", err
	}
	defer b.abort()
	return b.commit()
}

// tempFile creates a file in tmp/.
func (s *store) tempFile(prefix string) (*os.File, error) {
	return os.CreateTemp(filepath.Join(s.root, "tmp"), prefix)
}

// putBlob copies at most max bytes of r into the blob store, through a
// file made in dir, and returns its hash, its size and whether the blob is
// new; too many bytes is ErrTooLarge (named by what).
func (s *store) putBlob(r io.Reader, dir string, max int64, what string) (sum [32]byte, n int64, created bool, err error) {
	f, err := openFile(filepath.Join(dir, "blob-"+randHex()), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return sum, 0, false, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	lr := r
	if max > 0 {
		lr = io.LimitReader(r, max+1)
	}
	// One pooled buffer: a file that fits is read, hashed and written in
	// one go.
	bp := ioBuffers.Get().(*[]byte)
	defer ioBuffers.Put(bp)
	for {
		k, rerr := io.ReadFull(lr, *bp)
		if k > 0 {
			h.Write((*bp)[:k])
			if _, err = f.Write((*bp)[:k]); err != nil {
				return sum, n, false, err
			}
			n += int64(k)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return sum, n, false, rerr
		}
	}
	if max > 0 && n > max {
		return sum, n, false, fmt.Errorf("%w: %q grew over %d bytes", ErrTooLarge, what, max)
	}
	h.Sum(sum[:0])
	startWriteback(f)
	if err = f.Chmod(blobMode); err != nil {
		return sum, n, false, err
	}
	if err = f.Close(); err != nil {
		return sum, n, false, err
	}
	if s.hasBlob(sum) {
		os.Remove(f.Name())
		return sum, n, false, nil
	}
	return sum, n, true, os.Rename(f.Name(), s.blobPath(sum))
}

// saveManifest writes m durably under manifests/.
func (s *store) saveManifest(m *manifest) error {
	b, err := proto.Marshal(m.toProto())
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.root, "manifests", m.rev.ID()+".pb"), b, s)
}

// loadManifests reads every stored manifest; a corrupt one is removed (it
// would only be a half-written file of a crash, which rename prevents, or
// damage: either way the revision is fetched again if needed).
func (s *store) loadManifests(lim limits) (map[string]*manifest, error) {
	dir := filepath.Join(s.root, "manifests")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*manifest)
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".pb")
		if !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		var pm depsyncpb.RevisionManifest
		var m *manifest
		if err = proto.Unmarshal(b, &pm); err == nil {
			m, err = fromProto(&pm, limits{})
		}
		if err != nil || m.rev.ID() != id {
			os.Remove(filepath.Join(dir, e.Name()))
			continue
		}
		out[id] = m
	}
	return out, nil
}

func (s *store) removeManifest(id string) error {
	err := os.Remove(filepath.Join(s.root, "manifests", id+".pb"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func (s *store) markFailed(id string) error {
	return writeFileAtomic(filepath.Join(s.root, "failed", id), nil, s)
}

func (s *store) failed() (map[string]bool, error) {
	ents, err := os.ReadDir(filepath.Join(s.root, "failed"))
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(ents))
	for _, e := range ents {
		out[e.Name()] = true
	}
	return out, nil
}

func (s *store) unmarkFailed(id string) { os.Remove(filepath.Join(s.root, "failed", id)) }

// current returns the ID the current symlink points to, "" if none.
func (s *store) current() string {
	target, err := os.Readlink(s.currentPath())
	if err != nil {
		return ""
	}
	return filepath.Base(target)
}

// switchTo points current at revisions/<id> atomically (a new symlink
// renamed over the old one); id "" removes current.
func (s *store) switchTo(id string) error {
	if id == "" {
		err := os.Remove(s.currentPath())
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	tmp := filepath.Join(s.root, "tmp", "current-"+randHex())
	if err := os.Symlink(filepath.Join("revisions", id), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.currentPath()); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(s.root)
}

// verifyTree reports whether revisions/<id>/ holds exactly the files of m
// with their sizes and modes (content is not re-hashed: that is what the
// blob store verified).
func (s *store) verifyTree(m *manifest) bool {
	root := s.treePath(m.rev.ID())
	want := make(map[string]File, len(m.files))
	for _, f := range m.files {
		want[f.Path] = f
	}
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		f, ok := want[filepath.ToSlash(rel)]
		if !ok || !d.Type().IsRegular() {
			return errors.New("extra")
		}
		fi, err := d.Info()
		if err != nil || fi.Size() != f.Size || fi.Mode().Perm() != f.Mode {
			return errors.New("differs")
		}
		n++
		return nil
	})
	return err == nil && n == len(m.files)
}

// trees lists the revision IDs that have a tree.
func (s *store) trees() []string {
	ents, _ := os.ReadDir(filepath.Join(s.root, "revisions"))
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func (s *store) removeTree(id string) error { return removeAll(s.treePath(id)) }

// gcBlobs removes the blobs no kept manifest references and every partial
// blob (gc runs only between fetches).
func (s *store) gcBlobs(keep map[[32]byte]bool) {
	for _, d := range []string{"blobs", "partial"} {
		ents, _ := os.ReadDir(filepath.Join(s.root, d))
		for _, e := range ents {
			b, err := hex.DecodeString(e.Name())
			if d == "blobs" && err == nil && len(b) == 32 && keep[[32]byte(b)] {
				continue
			}
			os.Remove(filepath.Join(s.root, d, e.Name()))
		}
	}
}

// removeAll is os.RemoveAll that first makes read-only directories
// writable, so a tree whose modes forbid it can still be removed.
func removeAll(p string) error {
	err := os.RemoveAll(p)
	if err == nil {
		return nil
	}
	filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(q, 0o755)
		}
		return nil
	})
	return os.RemoveAll(p)
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(mode); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func writeFileAtomic(name string, b []byte, s *store) error {
	f, err := s.tempFile("w-")
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), name); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func randHex() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// sortIDs sorts revision IDs in revision order, newest first.
func sortIDs(ids []string) {
	sort.Slice(ids, func(i, j int) bool {
		ei, si, _ := parseID(ids[i])
		ej, sj, _ := parseID(ids[j])
		a, b := Revision{Epoch: ei, Seq: si}, Revision{Epoch: ej, Seq: sj}
		return b.Before(a)
	})
}
