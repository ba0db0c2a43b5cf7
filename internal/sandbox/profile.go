package sandbox

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/agentaudit/agentaudit/internal/glob"
)

//go:embed default.yaml
var defaultProfileYAML []byte

// DefaultProtectedPaths are protected in every profile: globs in package
// glob's dialect, relative to the workspace, where a glob without a slash
// matches at any depth. A trailing "/" marks a directory (for its
// placeholder).
var DefaultProtectedPaths = []string{".git/hooks/", ".git/config", ".env*"}

// Profile is a validated sandbox profile. Build one with ParseProfile,
// LoadProfile or DefaultProfile; a Profile is read-only afterwards.
type Profile struct {
	// Name identifies the profile in session events.
	Name string `yaml:"name"`
	// Image is the container image; empty means the Client's WithImage.
	Image string `yaml:"image"`
	// Workspace is where the host workspace is mounted (absolute).
	Workspace string `yaml:"workspace"`
	// ProtectedPaths are globs relative to the workspace (package glob's
	// dialect, as in policy files), mounted read-only in addition to
	// DefaultProtectedPaths.
	ProtectedPaths []string `yaml:"protected_paths"`
	// TmpSize bounds the tmpfs on /tmp.
	TmpSize Size `yaml:"tmp_size"`
	// Rlimits are applied to every process of the container.
	Rlimits Rlimits `yaml:"rlimits"`
	// Env is the container's whole environment: nothing comes from the host.
	Env map[string]string `yaml:"env"`
	// ExecEnv names the variables an ExecRequest may set in addition.
	ExecEnv []string `yaml:"exec_env"`
	// ExecTimeout is an exec's time-out when its request names none;
	// MaxExecTimeout caps what a request may ask for.
	ExecTimeout    Duration `yaml:"exec_timeout"`
	MaxExecTimeout Duration `yaml:"max_exec_timeout"`
	// OutputLimit caps the bytes of stdout and of stderr each that an
	// ExecResult keeps; their full length and sha256 are always reported.
	OutputLimit Size `yaml:"output_limit"`
	// Background lets processes a call starts outlive it (an agent
	// starting a dev server); they stay traced and their execs are checked
	// under the call that started them. Off by default: a call's leftover
	// processes are killed when it ends.
	Background bool `yaml:"background"`

	sha string
}

// Rlimits are the explicit resource limits (soft = hard) of a profile.
type Rlimits struct {
	NoFile uint64   `yaml:"nofile"`
	NProc  uint64   `yaml:"nproc"`
	AS     Size     `yaml:"as"`    // address space, bytes
	CPU    Duration `yaml:"cpu"`   // CPU time per process, whole seconds
	FSize  Size     `yaml:"fsize"` // largest file a process may write
}

// SHA256 is the hex sha256 of the YAML bytes the profile was parsed from,
// for the session.started event.
func (p *Profile) SHA256() string { return p.sha }

// Protected returns the protected globs: the defaults, then the profile's.
func (p *Profile) Protected() []string {
	return append(append([]string(nil), DefaultProtectedPaths...), p.ProtectedPaths...)
}

// DefaultProfileYAML returns the shipped default profile's source.
func DefaultProfileYAML() []byte { return bytes.Clone(defaultProfileYAML) }

// DefaultProfile returns the shipped default profile.
func DefaultProfile() *Profile {
	p, err := ParseProfile(defaultProfileYAML)
	if err != nil {
		panic("sandbox: shipped default profile is invalid: " + err.Error())
	}
	return p
}

// LoadProfile reads and parses the profile file at name.
func LoadProfile(name string) (*Profile, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidProfile, err)
	}
	return ParseProfile(data)
}

// ParseProfile parses and validates a profile. Unknown fields, a second
// YAML document and any invalid value are errors wrapping ErrInvalidProfile.
func ParseProfile(data []byte) (*Profile, error) {
	var p Profile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: empty document", ErrInvalidProfile)
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidProfile, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: more than one YAML document", ErrInvalidProfile)
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidProfile, err)
	}
	sum := sha256.Sum256(data)
	p.sha = hex.EncodeToString(sum[:])
	return &p, nil
}

var (
	nameRE   = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)
	envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Bounds a profile must stay within; they keep a typo from producing a
// sandbox that cannot start or that starves the host.
const (
	minTmp, maxTmp       = 1 << 20, 16 << 30
	minAS                = 64 << 20
	maxNoFile            = 1 << 20
	minNProc, maxNProc   = 8, 32768 // the Podman service's hard limit here
	minOutput, maxOutput = 1 << 10, 64 << 20
)

func (p *Profile) validate() error {
	if !nameRE.MatchString(p.Name) {
		return fmt.Errorf("name %q: want 1-63 of [a-zA-Z0-9_.-], starting alphanumeric", p.Name)
	}
	if strings.ContainsAny(p.Image, " \t\n") {
		return fmt.Errorf("image %q: contains white space", p.Image)
	}
	if err := checkWorkspaceMount(p.Workspace); err != nil {
		return err
	}
	for _, g := range p.ProtectedPaths {
		if err := checkProtectedGlob(g); err != nil {
			return err
		}
	}
	if p.TmpSize < minTmp || p.TmpSize > maxTmp {
		return fmt.Errorf("tmp_size %d: want %d..%d bytes", p.TmpSize, minTmp, maxTmp)
	}
	r := p.Rlimits
	switch {
	case r.NoFile < 16 || r.NoFile > maxNoFile:
		return fmt.Errorf("rlimits.nofile %d: want 16..%d", r.NoFile, maxNoFile)
	case r.NProc < minNProc || r.NProc > maxNProc:
		return fmt.Errorf("rlimits.nproc %d: want %d..%d", r.NProc, minNProc, maxNProc)
	case r.AS < minAS:
		return fmt.Errorf("rlimits.as %d: want at least %d bytes", r.AS, minAS)
	case r.CPU < Duration(time.Second) || time.Duration(r.CPU)%time.Second != 0:
		return fmt.Errorf("rlimits.cpu %v: want a whole number of seconds, at least 1s", time.Duration(r.CPU))
	case r.FSize < 1<<20:
		return fmt.Errorf("rlimits.fsize %d: want at least 1MiB", r.FSize)
	}
	if len(p.Env) == 0 || p.Env["PATH"] == "" {
		return errors.New("env: PATH must be set (nothing is inherited from the host)")
	}
	for k, v := range p.Env {
		if !envKeyRE.MatchString(k) {
			return fmt.Errorf("env %q: not a variable name", k)
		}
		if strings.ContainsRune(v, 0) {
			return fmt.Errorf("env %s: value contains NUL", k)
		}
	}
	seen := map[string]bool{}
	for _, k := range p.ExecEnv {
		if !envKeyRE.MatchString(k) {
			return fmt.Errorf("exec_env %q: not a variable name", k)
		}
		if seen[k] {
			return fmt.Errorf("exec_env %q: listed twice", k)
		}
		seen[k] = true
	}
	if p.ExecTimeout <= 0 || p.MaxExecTimeout <= 0 {
		return errors.New("exec_timeout and max_exec_timeout must be positive")
	}
	if p.ExecTimeout > p.MaxExecTimeout {
		return fmt.Errorf("exec_timeout %v exceeds max_exec_timeout %v", time.Duration(p.ExecTimeout), time.Duration(p.MaxExecTimeout))
	}
	if p.OutputLimit < minOutput || p.OutputLimit > maxOutput {
		return fmt.Errorf("output_limit %d: want %d..%d bytes", p.OutputLimit, minOutput, maxOutput)
	}
	sort.Strings(p.ExecEnv)
	return nil
}

func checkWorkspaceMount(ws string) error {
	if ws == "" || !path.IsAbs(ws) || path.Clean(ws) != ws || ws == "/" {
		return fmt.Errorf("workspace %q: want a clean absolute path other than /", ws)
	}
	for _, bad := range []string{"/proc", "/sys", "/dev", "/tmp", "/run", "/etc", "/usr", "/bin", "/sbin", "/lib"} {
		if ws == bad || strings.HasPrefix(ws, bad+"/") {
			return fmt.Errorf("workspace %q: may not be under %s", ws, bad)
		}
	}
	return nil
}

// checkProtectedGlob takes a glob in package glob's dialect, relative to
// the workspace: a leading "/" anchors it at the workspace root.
func checkProtectedGlob(g string) error {
	t := strings.TrimPrefix(strings.TrimSuffix(g, "/"), "/")
	if t == "" || path.IsAbs(t) || path.Clean(t) != t || t == "." || t == ".." || strings.HasPrefix(t, "../") {
		return fmt.Errorf("protected_paths %q: want a clean relative path inside the workspace", g)
	}
	if strings.ContainsAny(t, "\x00\n:,") {
		return fmt.Errorf("protected_paths %q: contains a character a mount cannot carry", g)
	}
	if _, err := glob.Compile(g, glob.Relative()); err != nil {
		return fmt.Errorf("protected_paths %q: %w", g, err)
	}
	return nil
}

// Size is a byte count that YAML may write as an integer or with a unit:
// 64KiB, 256MiB, 2GiB (also K/KB/k, M/MB/m, G/GB/g, all binary).
type Size uint64

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: size: want a scalar", n.Line)
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*s = v
	return nil
}

// ParseSize parses a byte count with an optional binary unit.
func ParseSize(s string) (Size, error) {
	num := strings.TrimRight(s, "KMGTiBkmgb")
	unit := strings.ToLower(s[len(num):])
	var mul uint64
	switch unit {
	case "", "b":
		mul = 1
	case "k", "kb", "kib":
		mul = 1 << 10
	case "m", "mb", "mib":
		mul = 1 << 20
	case "g", "gb", "gib":
		mul = 1 << 30
	default:
		return 0, fmt.Errorf("size %q: unknown unit %q", s, unit)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(num), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	if n > (1<<63)/mul {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return Size(n * mul), nil
}

// Duration is a time.Duration that YAML writes as "90s", "10m".
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: duration: want a scalar", n.Line)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}
