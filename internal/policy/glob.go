package policy

import (
	"fmt"
	"path"
	"strings"
)

// maxStars bounds "**" segments per pattern, which bounds matching time.
const maxStars = 3

// glob is a path pattern: segments separated by "/", each a path.Match
// pattern, where a "**" segment matches any number of segments. A pattern
// without a slash matches a base name at any depth, as in .gitignore.
type glob struct {
	src      string
	segs     []string
	anchored bool
}

func compileGlob(src string) (glob, error) {
	if src == "" {
		return glob{}, fmt.Errorf("empty glob")
	}
	s := strings.TrimPrefix(src, "./")
	anchored := strings.Contains(strings.TrimSuffix(s, "/"), "/")
	s = strings.Trim(s, "/")
	if s == "" {
		return glob{}, fmt.Errorf("glob %q matches nothing", src)
	}
	segs := strings.Split(s, "/")
	stars := 0
	for _, seg := range segs {
		if seg == "**" {
			stars++
			continue
		}
		if strings.Contains(seg, "**") {
			return glob{}, fmt.Errorf("glob %q: ** must be a whole path segment", src)
		}
		if _, err := path.Match(seg, ""); err != nil {
			return glob{}, fmt.Errorf("glob %q: %w", src, err)
		}
	}
	if stars > maxStars {
		return glob{}, fmt.Errorf("glob %q: more than %d ** segments", src, maxStars)
	}
	if !anchored {
		segs = append([]string{"**"}, segs...)
	}
	return glob{src: src, segs: segs, anchored: anchored}, nil
}

// match reports whether the clean, workspace-relative path p matches.
func (g glob) match(p string) bool {
	if p == "." || p == "" {
		return false
	}
	return matchSegs(g.segs, strings.Split(p, "/"))
}

// holds reports whether p is a directory that contains the fixed start of an
// anchored pattern, so that writing p (rm -rf .git) can write a match.
func (g glob) holds(p string) bool {
	if !g.anchored {
		return false
	}
	var ps []string
	if p != "." && p != "" {
		ps = strings.Split(p, "/")
	}
	if len(ps) >= len(g.segs) {
		return false
	}
	for i, s := range ps {
		if g.segs[i] == "**" {
			return true
		}
		if ok, _ := path.Match(g.segs[i], s); !ok {
			return false
		}
	}
	return true
}

func matchSegs(pat, segs []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for len(pat) > 0 && pat[0] == "**" {
				pat = pat[1:]
			}
			if len(pat) == 0 {
				return len(segs) > 0
			}
			for i := 0; i < len(segs); i++ {
				if matchSegs(pat, segs[i:]) {
					return true
				}
			}
			return false
		}
		if len(segs) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], segs[0]); !ok {
			return false
		}
		pat, segs = pat[1:], segs[1:]
	}
	return len(segs) == 0
}

// argGlob matches a whole command-line argument, with "*" not crossing "/".
type argGlob struct {
	src  string
	segs []string
}

func compileArgGlob(src string) (argGlob, error) {
	if src == "" {
		return argGlob{}, fmt.Errorf("empty argument pattern")
	}
	segs := strings.Split(src, "/")
	stars := 0
	for _, seg := range segs {
		if seg == "**" {
			stars++
			continue
		}
		if _, err := path.Match(seg, ""); err != nil {
			return argGlob{}, fmt.Errorf("argument pattern %q: %w", src, err)
		}
	}
	if stars > maxStars {
		return argGlob{}, fmt.Errorf("argument pattern %q: more than %d ** segments", src, maxStars)
	}
	return argGlob{src: src, segs: segs}, nil
}

func (g argGlob) match(arg string) bool {
	return matchArgSegs(g.segs, strings.Split(arg, "/"))
}

// matchArgSegs is matchSegs where "**" may also match no segment.
func matchArgSegs(pat, segs []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(segs); i++ {
				if matchArgSegs(pat[1:], segs[i:]) {
					return true
				}
			}
			return false
		}
		if len(segs) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], segs[0]); !ok {
			return false
		}
		pat, segs = pat[1:], segs[1:]
	}
	return len(segs) == 0
}

// PathMatcher matches workspace-relative paths against globs in the
// policy's dialect (see protected_paths): segments separated by "/", each
// a path.Match pattern, "**" for any number of segments, and a glob
// without a slash matching a base name at any depth.
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
