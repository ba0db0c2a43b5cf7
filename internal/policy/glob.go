package policy

import (
	"errors"
	"fmt"
	"strings"

	dialect "github.com/agentaudit/agentaudit/internal/glob"
)

// glob is a path pattern in the dialect of package glob, relative to the
// workspace: a pattern without a slash matches a base name at any depth.
type glob struct {
	p *dialect.Pattern
}

func compileGlob(src string) (glob, error) {
	p, err := dialect.Compile(src, dialect.Relative())
	if err != nil {
		return glob{}, err
	}
	return glob{p}, nil
}

// match reports whether the clean, workspace-relative path p matches.
func (g glob) match(p string) bool { return g.p.Match(p) }

// holds reports whether p is a directory that contains the fixed start of an
// anchored pattern, so that writing p (rm -rf .git) can write a match.
func (g glob) holds(p string) bool { return g.p.Holds(p) }

// argGlob matches a whole command-line argument, with "*" not crossing "/".
type argGlob struct {
	src string
	p   *dialect.Pattern
}

func compileArgGlob(src string) (argGlob, error) {
	p, err := dialect.Compile(src, dialect.Whole())
	if err != nil {
		var e *dialect.Error
		if errors.As(err, &e) {
			return argGlob{}, fmt.Errorf("argument pattern %q: %w", src, e.Err)
		}
		return argGlob{}, err
	}
	return argGlob{src: src, p: p}, nil
}

func (g argGlob) match(arg string) bool { return g.p.Match(arg) }

// forbids matches arg against a known-safe entry's forbidden arguments,
// where a wider match is the safe side: an option's value is not a path,
// so "*" there also crosses "/" (--output=* forbids --output=/tmp/x).
func (g argGlob) forbids(arg string) bool {
	return g.p.Match(arg) || (strings.Contains(arg, "/") && g.p.Match(strings.ReplaceAll(arg, "/", "\x00")))
}

// PathMatcher matches workspace-relative paths against globs in the
// dialect of package glob (see protected_paths): segments separated by
// "/", each a path.Match pattern, "**" for any number of segments, and a
// glob without a slash matching a base name at any depth.
type PathMatcher struct {
	globs []glob
}

// NewPathMatcher compiles globs, such as Policy.ProtectedPaths returns.
func NewPathMatcher(globs []string) (*PathMatcher, error) {
	m := &PathMatcher{}
	for _, s := range globs {
		g, err := compileGlob(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidPolicy, err)
		}
		m.globs = append(m.globs, g)
	}
	return m, nil
}

// Match reports whether a workspace-relative path (forward slashes) matches
// one of the globs. The path is cleaned first; an absolute path or one that
// leaves the workspace matches nothing.
func (m *PathMatcher) Match(rel string) bool {
	c, ok := workspaceRel(rel)
	if !ok {
		return false
	}
	for _, g := range m.globs {
		if g.match(c) {
			return true
		}
	}
	return false
}
