package fsguard

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Matcher says which workspace paths are protected. rel is clean,
// relative to the workspace root and uses forward slashes.
type Matcher interface {
	Match(rel string) bool
}

// Holder may be implemented by a Matcher whose patterns name directories
// on the way to their matches. Holds(dir) reports whether a pattern
// matches dir as a proper prefix that ends in a segment other than "**":
// secrets/** holds secrets, deploy/*.yaml holds deploy, **/.git/config
// holds every directory named .git, and **/*.pem holds nothing (a match
// behind a symlink is found where the link points). A symlink at such a
// dir is guarded like a protected path, since it would make the matches
// beneath it resolve elsewhere; and the walk enters a directory it
// otherwise skips (node_modules, .git/objects, .git/lfs) where Holds is
// true.
type Holder interface {
	Holds(dir string) bool
}

// ChangeKind is the machine-readable kind of a change; kinds are recorded
// in audit events and are never renamed.
type ChangeKind string

// Kinds of change. When several apply to one path, the first in this list
// is reported (Before and After still show every difference).
const (
	KindCreated  ChangeKind = "created"  // the path did not exist in the baseline
	KindDeleted  ChangeKind = "deleted"  // the path existed in the baseline and is gone
	KindType     ChangeKind = "type"     // file, directory, symlink or other: not the baseline's type
	KindHardLink ChangeKind = "hardlink" // a protected file has links, or names, the baseline's did not have
	KindModified ChangeKind = "modified" // a file's content or a symlink's target
	KindMode     ChangeKind = "mode"     // permission bits
)

// Change is one protected path that differs from the baseline.
type Change struct {
	Path string // workspace-relative, forward slashes
	Kind ChangeKind
	// Before (the baseline) and After (the file system) are the sha256,
	// in hex, of a regular file's content, or a symlink's target; "" for a
	// directory, another type, a file that could not be read, or a path
	// that does not exist (Kind says which: created has no Before,
	// deleted no After).
	Before, After string
	// BeforeMode and AfterMode are type and permission bits; 0 when absent.
	BeforeMode, AfterMode fs.FileMode
	// Links are, for a hard-link change, the other workspace paths of the
	// same file that the baseline did not have, sorted.
	Links []string
}

// Errors of the guard.
var (
	// ErrLimit: the workspace has more entries or deeper directories than
	// the walk's bound; nothing is known about the protected paths.
	ErrLimit = errors.New("fsguard: workspace exceeds the walk's bound")
	// ErrNoBaseline: Check, Revert or Accept before Snapshot.
	ErrNoBaseline = errors.New("fsguard: no baseline; call Snapshot first")
	// ErrUnstable: a protected path changed every time it was read.
	ErrUnstable = errors.New("fsguard: path kept changing while it was read")
	// ErrUnrevertable: a change to a file's content cannot be undone: the
	// baseline kept only the hash of the content (over the content limits)
	// or could not read it. Other failures carry the system's error.
	ErrUnrevertable = errors.New("fsguard: change could not be reverted")
	// ErrBadPath: a path given to Revert is not a clean workspace-relative
	// path, or neither in the baseline nor reported by the last Check.
	ErrBadPath = errors.New("fsguard: not a protected workspace path")
)

const (
	defaultMaxEntries = 200_000
	defaultFileLimit  = 1 << 20
	defaultTotalLimit = 16 << 20
	maxDepth          = 256
)

// Option configures a Guard.
type Option func(*Guard)

// WithMaxEntries bounds the walk: a workspace with more directory entries
// (outside the skipped directories) makes Snapshot and Check fail with
// ErrLimit. The default is 200,000.
func WithMaxEntries(n int) Option {
	return func(g *Guard) {
		if n > 0 {
			g.maxEntries = n
		}
	}
}

// WithContentLimits bounds the baseline content kept to restore files:
// at most perFile bytes of one file and total bytes in all. A file over
// either is guarded by its hash only. The defaults are 1 MiB and 16 MiB.
func WithContentLimits(perFile, total int64) Option {
	return func(g *Guard) {
		if perFile >= 0 {
			g.fileLimit = perFile
		}
		if total >= 0 {
			g.totalLimit = total
		}
	}
}

// Guard keeps the protected paths of one workspace. Its methods may be
// called from several goroutines; they run one at a time.
type Guard struct {
	root     string
	m        Matcher
	h        Holder // nil when m has no Holds
	uid, gid int    // the root's owner: new directories on the way get it

	maxEntries            int
	fileLimit, totalLimit int64

	mu    sync.Mutex
	base  map[string]*entry    // nil until Snapshot
	kept  int64                // bytes of content in base
	seen  map[string]*entry    // the last Check's view of each changed path; nil: absent
	cache map[string]*dirCache // directory listings of the last walk
	hot   time.Duration        // a directory changed this recently is listed again
	bufs  [][]byte             // getdents buffers, one per depth
	rbuf  []byte               // content being read
	chunk []byte               // read buffer
	euid0 bool
}

// New returns a guard of the workspace directory root. m adds protected
// paths to the built-in set; it may be nil.
func New(root string, m Matcher, opts ...Option) (*Guard, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("fsguard: workspace: %w", err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("fsguard: workspace: %w", err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("fsguard: workspace: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("fsguard: workspace %s is not a directory", real)
	}
	g := &Guard{
		root: real, m: m, uid: -1, gid: -1,
		maxEntries: defaultMaxEntries, fileLimit: defaultFileLimit, totalLimit: defaultTotalLimit,
		euid0: os.Geteuid() == 0, hot: time.Second,
	}
	if h, ok := m.(Holder); ok {
		g.h = h
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		g.uid, g.gid = int(st.Uid), int(st.Gid)
	}
	for _, o := range opts {
		o(g)
	}
	return g, nil
}

// Root returns the workspace directory.
func (g *Guard) Root() string { return g.root }

// Snapshot takes the baseline: the state of every protected path now,
// with the content of files within the content limits. It replaces any
// earlier baseline.
func (g *Guard) Snapshot() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cache = nil // a baseline is taken from a full listing
	s := g.newScan(nil)
	if err := s.run(); err != nil {
		return err
	}
	g.base, g.kept, g.seen = s.out, s.kept, nil
	return nil
}

// Check reports every protected path that differs from the baseline,
// sorted by path. An error means the walk did not finish: the protected
// paths are then unknown, not unchanged.
func (g *Guard) Check() ([]Change, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.base == nil {
		return nil, ErrNoBaseline
	}
	s := g.newScan(g.base)
	if err := s.run(); err != nil {
		return nil, err
	}
	var paths []string
	for p, b := range g.base {
		if _, ok := s.out[p]; !ok && !b.heldDir() {
			paths = append(paths, p)
		}
	}
	for p := range s.out {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	var cs []Change
	g.seen = map[string]*entry{}
	for _, p := range paths {
		b, c := g.base[p], s.out[p]
		kind, ok := compare(b, c)
		if !ok {
			continue
		}
		ch := Change{Path: p, Kind: kind}
		ch.Before, ch.BeforeMode = b.describe()
		ch.After, ch.AfterMode = c.describe()
		if kind == KindHardLink {
			ch.Links = newLinks(b, c)
		}
		cs = append(cs, ch)
		g.seen[p] = c
	}
	return cs, nil
}

// Accept makes approved changes part of the baseline, as the last Check
// saw them. A change Check did not report is ignored.
func (g *Guard) Accept(cs []Change) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.base == nil {
		return
	}
	for _, c := range cs {
		e, ok := g.seen[c.Path]
		if !ok {
			continue
		}
		delete(g.seen, c.Path)
		if old := g.base[c.Path]; old != nil {
			g.kept -= int64(len(old.data))
		}
		if e == nil || e.heldDir() {
			delete(g.base, c.Path)
			continue
		}
		if e.kept && g.kept+int64(len(e.data)) > g.totalLimit {
			e.data, e.kept = nil, false
		}
		g.kept += int64(len(e.data))
		g.base[c.Path] = e
	}
}

// entry is the state of one path.
type entry struct {
	mode   fs.FileMode // type and permission bits
	sum    [32]byte    // content of a regular file
	unread bool        // a regular file that could not be read: sum is unknown
	target string      // of a symlink
	data   []byte      // content, when kept
	kept   bool
	size   int64
	dev    uint64
	ino    uint64
	nlink  uint64
	uid    uint32
	gid    uint32
	ctime  int64 // ns; tells an unreadable file's changes
	held   bool  // not protected, only holds protected paths
	links  []string
}

func (e *entry) heldDir() bool { return e != nil && e.held && e.mode.IsDir() }

func (e *entry) describe() (string, fs.FileMode) {
	switch {
	case e == nil:
		return "", 0
	case e.mode.IsRegular() && !e.unread:
		return hex.EncodeToString(e.sum[:]), e.mode
	case e.mode&fs.ModeSymlink != 0:
		return e.target, e.mode
	}
	return "", e.mode
}

// compare says how the current state c differs from the baseline b. A
// directory that only holds protected paths is as good as no entry: only
// its becoming something else is a change.
func compare(b, c *entry) (ChangeKind, bool) {
	bNone, cNone := b == nil || b.heldDir(), c == nil || c.heldDir()
	switch {
	case bNone && cNone:
		return "", false
	case b == nil:
		return KindCreated, true
	case c == nil:
		return KindDeleted, true
	case bNone || cNone || b.mode.Type() != c.mode.Type():
		return KindType, true
	}
	switch {
	case c.mode.IsRegular():
		if c.nlink > 1 && (c.dev != b.dev || c.ino != b.ino || c.nlink > b.nlink || len(newLinks(b, c)) > 0) {
			return KindHardLink, true
		}
		if b.unread || c.unread {
			if b.unread != c.unread || b.ino != c.ino || b.ctime != c.ctime || b.size != c.size {
				return KindModified, true
			}
		} else if b.sum != c.sum {
			return KindModified, true
		}
	case c.mode&fs.ModeSymlink != 0:
		if b.target != c.target {
			return KindModified, true
		}
		return "", false // a symlink's own mode means nothing on Linux
	}
	if b.mode != c.mode {
		return KindMode, true
	}
	return "", false
}

// newLinks are c's links that b did not have.
func newLinks(b, c *entry) []string {
	if c == nil {
		return nil
	}
	var out []string
	for _, l := range c.links {
		if b == nil || !slices.Contains(b.links, l) {
			out = append(out, l)
		}
	}
	return out
}
