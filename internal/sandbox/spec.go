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

// expandProtected expands the protected globs against the host workspace
// ws (absolute, symlinks resolved). Literal paths that are missing get an
// empty placeholder when their parent directory exists; matches that
// resolve outside ws, and anything but regular files and directories, are
// skipped.
func expandProtected(ws string, globs []string) (protectedSet, error) {
	found := map[string]bool{}
	for _, g := range globs {
		wantDir := strings.HasSuffix(g, "/")
		pat := strings.TrimSuffix(g, "/")
		var cands []string
		if !hasMeta(pat) {
			full := filepath.Join(ws, filepath.FromSlash(pat))
			if _, err := os.Lstat(full); errors.Is(err, fs.ErrNotExist) {
				if err := placeholder(ws, full, wantDir); err != nil {
					return protectedSet{}, err
				}
			}
			cands = []string{full}
		} else {
			m, err := filepath.Glob(filepath.Join(ws, filepath.FromSlash(pat)))
			if err != nil {
				return protectedSet{}, fmt.Errorf("protected path %q: %w", g, err)
			}
			cands = m
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
