package runner

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/fsguard"
	"github.com/agentaudit/agentaudit/internal/policy"
)

// openGuard watches the session's protected paths: the policy's, the
// sandbox profile's, and fsguard's built-in set (hooks and config of every
// repository, CI files, .env files), at any depth, including the ones the
// session itself creates.
func openGuard(ws *Workspace, pol *policy.Policy, profile []string) (*fsguard.Guard, error) {
	m, err := policy.NewPathMatcher(append(pol.ProtectedPaths(), profile...))
	if err != nil {
		return nil, fmt.Errorf("runner: protected paths: %w", err)
	}
	g, err := fsguard.New(ws.Dir(), m)
	if err != nil {
		return nil, err
	}
	if err := g.Snapshot(); err != nil {
		return nil, fmt.Errorf("runner: protected paths: %w", err)
	}
	return g, nil
}

// guardCheck compares the protected paths with their baseline. A change a
// human approved (the call ran on an approval) becomes the baseline; any
// other is reverted and recorded as a sandbox.violation of kind path. It
// returns the changes it reverted, for the agent.
func (s *Session) guardCheck(callID, parent string, approved bool, when string) ([]fsguard.Change, error) {
	if s.guard == nil {
		return nil, nil
	}
	changes, err := s.guard.Check()
	if err != nil {
		s.violation(callID, events.SandboxViolation{Kind: events.ViolationPath, ReasonCode: events.ReasonSandboxError,
			Detail: clip(fmt.Sprintf("the protected paths could not be checked %s: %v", when, err), 2048)}, parent)
		return nil, err
	}
	if len(changes) == 0 {
		return nil, nil
	}
	if approved {
		s.guard.Accept(changes)
		return nil, nil
	}
	// A repository the session creates (git init, git clone) brings a
	// plain config and sample hooks: nothing that runs. Those become the
	// baseline, and from then on its hooks and config are guarded too.
	var inert, rest []fsguard.Change
	for _, c := range changes {
		if inertCreation(s.ws.Dir(), c) {
			inert = append(inert, c)
		} else {
			rest = append(rest, c)
		}
	}
	s.guard.Accept(inert)
	changes = rest
	if len(changes) == 0 {
		return nil, nil
	}
	failed, rerr := s.guard.Revert(changes)
	bad := map[string]bool{}
	for _, c := range failed {
		bad[c.Path] = true
	}
	for _, c := range changes {
		what := "reverted"
		if bad[c.Path] {
			what = "could NOT be reverted"
		}
		detail := fmt.Sprintf("protected path %s was %s %s without an approval; %s", c.Path, kindWords(c.Kind), when, what)
		if len(c.Links) > 0 {
			detail += " (other names of the file: " + strings.Join(c.Links, ", ") + ")"
		}
		s.violation(callID, events.SandboxViolation{Kind: events.ViolationPath, Path: clip(c.Path, 4096),
			ReasonCode: events.ReasonProtectedPath, Detail: clip(detail, 2048)}, parent)
	}
	if rerr != nil {
		s.r.o.log.Error("protected path change not reverted", "session", s.id, "err", rerr)
	}
	return changes, errors.Join(rerr)
}

func kindWords(k fsguard.ChangeKind) string {
	switch k {
	case fsguard.KindCreated:
		return "created"
	case fsguard.KindDeleted:
		return "deleted"
	case fsguard.KindType:
		return "replaced by another kind of file"
	case fsguard.KindHardLink:
		return "given another name (hard link)"
	case fsguard.KindMode:
		return "given other permissions"
	}
	return "modified"
}

// inertCreation reports whether a change is a new repository's harmless
// part: its hooks directory, a sample hook (git never runs *.sample), or a
// config whose every key is one git init or git clone writes. Anything
// else, or anything this cannot read with certainty, is not.
func inertCreation(root string, c fsguard.Change) bool {
	if c.Kind != fsguard.KindCreated {
		return false
	}
	dir, name := path.Split(c.Path)
	dir = strings.TrimSuffix(dir, "/")
	inGit := func(d string) bool { return d == ".git" || strings.HasSuffix(d, "/.git") }
	switch {
	case name == "hooks" && inGit(dir) && c.AfterMode.IsDir():
		return true
	case strings.HasSuffix(name, ".sample") && path.Base(dir) == "hooks" && inGit(path.Dir(dir)) && c.AfterMode.IsRegular():
		return true
	case name == "config" && inGit(dir) && c.AfterMode.IsRegular():
		return plainGitConfig(filepath.Join(root, filepath.FromSlash(c.Path)))
	}
	return false
}

// plainKeys are the config keys git init and git clone write.
var plainKeys = map[string]map[string]bool{
	"core": {"repositoryformatversion": true, "filemode": true, "bare": true, "logallrefupdates": true,
		"ignorecase": true, "precomposeunicode": true, "symlinks": true},
	"remote":     {"url": true, "fetch": true},
	"branch":     {"remote": true, "merge": true},
	"extensions": {"objectformat": true},
}

// plainGitConfig reads a git config file (not following a symlink) and
// reports whether it holds only plainKeys.
func plainGitConfig(file string) bool {
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	// A new config with another name is not what git writes.
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil || st.Nlink != 1 {
		return false
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10+1))
	if err != nil || len(b) > 64<<10 {
		return false
	}
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
			continue
		case line[0] == '[':
			end := strings.IndexByte(line, ']')
			if end < 0 || strings.TrimSpace(line[end+1:]) != "" {
				return false
			}
			name, _, _ := strings.Cut(strings.TrimSpace(line[1:end]), " ")
			section = strings.ToLower(name)
			if plainKeys[section] == nil {
				return false
			}
		default:
			key, _, _ := strings.Cut(line, "=")
			key = strings.ToLower(strings.TrimSpace(key))
			if section == "" || !plainKeys[section][key] || strings.ContainsAny(line, "\\\"") {
				return false
			}
		}
	}
	return true
}
