package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/containers/podman/v5/pkg/specgen"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/agentaudit/agentaudit/internal/glob"
)

const rlimInfinity = ^uint64(0)

func (c *Client) spec(name, sessionID, image string, p *Profile, ws string, prot protectedSet, sc startConfig) *specgen.SpecGenerator {
	f, t := false, true
	s := specgen.NewSpecGenerator(image, false)
	s.Name = name
	// PID 1 is the supervisor (see supervisorCommand).
	s.Command = sc.command
	s.Hostname = "sandbox"
	s.Labels = map[string]string{
		LabelSession: sessionID,
		LabelRunner:  c.runnerID,
		LabelProfile: p.Name,
	}

	s.NetNS = specgen.Namespace{NSMode: specgen.NoNetwork}
	s.UserNS = specgen.Namespace{NSMode: specgen.KeepID}
	s.ReadOnlyFilesystem = &t
	// Without this Podman adds unbounded tmpfs mounts on /run, /var/tmp
	// and /tmp next to the read-only root.
	s.ReadWriteTmpfs = &f
	s.CapDrop = []string{"ALL"}
	s.NoNewPrivileges = &t
	s.SeccompPolicy = "default"
	// Nothing from the host: not its environment, not its proxy variables.
	s.EnvHost = &f
	s.HTTPProxy = &f
	s.Terminal = &f
	s.Stdin = &f
	s.Env = map[string]string{}
	for k, v := range p.Env {
		s.Env[k] = v
	}
	for k, v := range sc.env {
		s.Env[k] = v
	}
	s.WorkDir = p.Workspace

	r := p.Rlimits
	s.Rlimits = []specs.POSIXRlimit{
		{Type: "nofile", Soft: r.NoFile, Hard: r.NoFile},
		{Type: "nproc", Soft: r.NProc, Hard: r.NProc},
		{Type: "as", Soft: uint64(r.AS), Hard: uint64(r.AS)},
		// The CPU limit is the supervisor's to apply to each call (it is
		// per process, and the supervisor lives as long as the session).
		{Type: "cpu", Soft: rlimInfinity, Hard: rlimInfinity},
		{Type: "fsize", Soft: uint64(r.FSize), Hard: uint64(r.FSize)},
		{Type: "core", Soft: 0, Hard: 0},
	}

	opts := func(extra ...string) []string { return append([]string{"bind", "nosuid", "nodev"}, extra...) }
	s.Mounts = []specs.Mount{
		{Destination: p.Workspace, Type: "bind", Source: ws, Options: opts("rw")},
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs",
			Options: []string{"rw", "nosuid", "nodev", "mode=1777", "size=" + strconv.FormatUint(uint64(p.TmpSize), 10)}},
	}
	// Parents first: a protected file is mounted over its directory's
	// self-bind, not under it.
	for _, m := range prot.mounts() {
		mode := "rw"
		if m.ro {
			mode = "ro"
		}
		s.Mounts = append(s.Mounts, specs.Mount{
			Destination: path.Join(p.Workspace, m.rel), Type: "bind",
			Source: filepath.Join(ws, filepath.FromSlash(m.rel)), Options: opts(mode),
		})
	}
	for _, b := range sc.binds {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: b.dst, Type: "bind", Source: b.src, Options: opts("ro")})
	}
	return s
}

// protectedSet is what expandProtected found: the protected paths and the
// directories between them and the workspace root, all workspace-relative
// with forward slashes.
type protectedSet struct {
	paths   []string // mounted read-only
	parents []string // bound onto themselves read-write so they cannot be renamed
}

type protMount struct {
	rel string
	ro  bool
}

func (p protectedSet) mounts() []protMount {
	var ms []protMount
	for _, d := range p.parents {
		ms = append(ms, protMount{d, false})
	}
	for _, f := range p.paths {
		ms = append(ms, protMount{f, true})
	}
	sort.SliceStable(ms, func(i, j int) bool {
		di, dj := strings.Count(ms[i].rel, "/"), strings.Count(ms[j].rel, "/")
		if di != dj {
			return di < dj
		}
		return ms[i].rel < ms[j].rel
	})
	return ms
}

// expandProtected expands the protected globs (package glob's dialect,
// relative to the workspace) against the host workspace ws (absolute,
// symlinks resolved). Literal paths that are missing get an empty
// placeholder when their parent directory exists; matches that resolve
// outside ws, and anything but regular files and directories, are skipped.
func expandProtected(ws string, globs []string) (protectedSet, error) {
	found := map[string]bool{}
	var cands []string
	var walk []*glob.Pattern
	for _, g := range globs {
		pat, err := glob.Compile(g, glob.Relative())
		if err != nil {
			return protectedSet{}, fmt.Errorf("protected path %q: %w", g, err)
		}
		lit := strings.TrimPrefix(strings.TrimSuffix(g, "/"), "/")
		if !hasMeta(lit) {
			full := filepath.Join(ws, filepath.FromSlash(lit))
			if _, err := os.Lstat(full); errors.Is(err, fs.ErrNotExist) {
				if err := placeholder(ws, full, strings.HasSuffix(g, "/")); err != nil {
					return protectedSet{}, err
				}
			}
			cands = append(cands, full)
		}
		// A pattern without a slash matches at any depth.
		if hasMeta(lit) || !pat.Anchored() {
			walk = append(walk, pat)
		}
	}
	if len(walk) > 0 {
		cands = append(cands, walkMatches(ws, walk)...)
	}
	for _, full := range cands {
		real, err := filepath.EvalSymlinks(full)
		if err != nil {
			continue // missing, or a dangling symlink: nothing to mount
		}
		rel, ok := inside(ws, real)
		if !ok || rel == "." {
			continue
		}
		fi, err := os.Stat(real)
		if err != nil || !(fi.Mode().IsRegular() || fi.IsDir()) {
			continue
		}
		found[rel] = true
	}
	var ps protectedSet
	for rel := range found {
		// Under another protected directory: already read-only.
		if coveredBy(rel, found) {
			continue
		}
		ps.paths = append(ps.paths, rel)
	}
	parents := map[string]bool{}
	for _, rel := range ps.paths {
		for d := path.Dir(rel); d != "."; d = path.Dir(d) {
			if !found[d] {
				parents[d] = true
			}
		}
	}
	for d := range parents {
		ps.parents = append(ps.parents, d)
	}
	sort.Strings(ps.paths)
	sort.Strings(ps.parents)
	return ps, nil
}

func coveredBy(rel string, set map[string]bool) bool {
	for d := path.Dir(rel); d != "."; d = path.Dir(d) {
		if set[d] {
			return true
		}
	}
	return false
}

// inside returns real relative to ws with forward slashes, and whether it
// lies inside ws.
func inside(ws, real string) (string, bool) {
	rel, err := filepath.Rel(ws, real)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// walkMatches returns the paths under ws (host paths) that match one of
// pats, looking only into directories where one may match. A symlink to a
// directory inside ws is followed once per target, so that "sub/*.pem"
// still finds what a symlinked sub holds and a symlink loop ends.
func walkMatches(ws string, pats []*glob.Pattern) []string {
	var out []string
	followed := map[string]bool{ws: true}
	var visit func(dir, rel string)
	visit = func(dir, rel string) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return // unreadable: nothing to mount, as filepath.Glob did
		}
		for _, e := range ents {
			r := e.Name()
			if rel != "" {
				r = rel + "/" + r
			}
			full := filepath.Join(dir, e.Name())
			may := false
			for _, p := range pats {
				if p.Match(r) {
					out = append(out, full)
				}
				may = may || p.MayContain(r)
			}
			if !may {
				continue
			}
			switch {
			case e.IsDir():
				visit(full, r)
			case e.Type()&fs.ModeSymlink != 0:
				real, err := filepath.EvalSymlinks(full)
				if err != nil || followed[real] {
					continue
				}
				if _, ok := inside(ws, real); !ok {
					continue
				}
				if fi, err := os.Stat(real); err == nil && fi.IsDir() {
					followed[real] = true
					visit(full, r)
				}
			}
		}
	}
	visit(ws, "")
	return out
}

// placeholder creates an empty file (or directory) at full when its parent
// is a real directory inside ws, owned like the parent, so that it can be
// mounted read-only and cannot be created writable later.
func placeholder(ws, full string, dir bool) error {
	parent := filepath.Dir(full)
	fi, err := os.Lstat(parent)
	if err != nil || !fi.IsDir() {
		return nil // no parent (not a repository, say): nothing to protect yet
	}
	realParent, err := filepath.EvalSymlinks(parent)
	if err != nil {
		return nil
	}
	if _, ok := inside(ws, realParent); !ok {
		return nil
	}
	if dir {
		err = os.Mkdir(full, 0o755)
	} else {
		var f *os.File
		f, err = os.OpenFile(full, os.O_CREATE|os.O_EXCL|os.O_WRONLY|syscall.O_NOFOLLOW, 0o644)
		if err == nil {
			err = f.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("placeholder for protected path %s: %w", full, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		// Best effort: a runner that is not root cannot chown, and then
		// the placeholder is its own, which is fine.
		_ = os.Lchown(full, int(st.Uid), int(st.Gid))
	}
	return nil
}
