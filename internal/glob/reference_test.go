package glob

// The three dialects this package replaced, kept as the reference its fuzz
// targets compare against: policy path and argument globs
// (internal/policy/glob.go), the detection rules' glob function
// (internal/detect/funcs.go) and, for sandbox profiles, filepath.Match as
// filepath.Glob applied it.

import (
	"fmt"
	"path"
	"strings"
	"sync"
)

// ---- policy (internal/policy/glob.go) ----

// oldMaxStars bounds "**" segments per pattern, which bounds matching time.
const oldMaxStars = 3

// glob is a path pattern: segments separated by "/", each a path.Match
// pattern, where a "**" segment matches any number of segments. A pattern
// without a slash matches a base name at any depth, as in .gitignore.
type oldPolicyGlob struct {
	src      string
	segs     []string
	anchored bool
}

func oldCompilePolicyGlob(src string) (oldPolicyGlob, error) {
	if src == "" {
		return oldPolicyGlob{}, fmt.Errorf("empty glob")
	}
	s := strings.TrimPrefix(src, "./")
	anchored := strings.Contains(strings.TrimSuffix(s, "/"), "/")
	s = strings.Trim(s, "/")
	if s == "" {
		return oldPolicyGlob{}, fmt.Errorf("glob %q matches nothing", src)
	}
	segs := strings.Split(s, "/")
	stars := 0
	for _, seg := range segs {
		if seg == "**" {
			stars++
			continue
		}
		if strings.Contains(seg, "**") {
			return oldPolicyGlob{}, fmt.Errorf("glob %q: ** must be a whole path segment", src)
		}
		if _, err := path.Match(seg, ""); err != nil {
			return oldPolicyGlob{}, fmt.Errorf("glob %q: %w", src, err)
		}
	}
	if stars > oldMaxStars {
		return oldPolicyGlob{}, fmt.Errorf("glob %q: more than %d ** segments", src, oldMaxStars)
	}
	if !anchored {
		segs = append([]string{"**"}, segs...)
	}
	return oldPolicyGlob{src: src, segs: segs, anchored: anchored}, nil
}

// match reports whether the clean, workspace-relative path p matches.
func (g oldPolicyGlob) match(p string) bool {
	if p == "." || p == "" {
		return false
	}
	return oldMatchSegs(g.segs, strings.Split(p, "/"))
}

// holds reports whether p is a directory that contains the fixed start of an
// anchored pattern, so that writing p (rm -rf .git) can write a match.
func (g oldPolicyGlob) holds(p string) bool {
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

func oldMatchSegs(pat, segs []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for len(pat) > 0 && pat[0] == "**" {
				pat = pat[1:]
			}
			if len(pat) == 0 {
				return len(segs) > 0
			}
			for i := 0; i < len(segs); i++ {
				if oldMatchSegs(pat, segs[i:]) {
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

// oldArgGlob matches a whole command-line argument, with "*" not crossing "/".
type oldArgGlob struct {
	src  string
	segs []string
}

func oldCompileArgGlob(src string) (oldArgGlob, error) {
	if src == "" {
		return oldArgGlob{}, fmt.Errorf("empty argument pattern")
	}
	segs := strings.Split(src, "/")
	stars := 0
	for _, seg := range segs {
		if seg == "**" {
			stars++
			continue
		}
		if _, err := path.Match(seg, ""); err != nil {
			return oldArgGlob{}, fmt.Errorf("argument pattern %q: %w", src, err)
		}
	}
	if stars > oldMaxStars {
		return oldArgGlob{}, fmt.Errorf("argument pattern %q: more than %d ** segments", src, oldMaxStars)
	}
	return oldArgGlob{src: src, segs: segs}, nil
}

func (g oldArgGlob) match(arg string) bool {
	return oldMatchArgSegs(g.segs, strings.Split(arg, "/"))
}

// oldMatchArgSegs is oldMatchSegs where "**" may also match no segment.
func oldMatchArgSegs(pat, segs []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(segs); i++ {
				if oldMatchArgSegs(pat[1:], segs[i:]) {
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

// ---- detection rules (internal/detect/funcs.go) ----

// oldDetectMatch is the rules' glob(name, pattern).
func oldDetectMatch(name, pattern string) bool { return oldCompiledDetect(pattern).match(name) }

func (g *oldDetectPattern) match(name string) bool {
	if g.pattern == "" {
		return false
	}
	if g.baseOnly {
		name = path.Base(name)
	}
	// Most names fail on the pattern's longest literal; checking it first
	// keeps rules with long pattern lists cheap.
	if !strings.Contains(name, g.literal) {
		return false
	}
	return oldDetectAt(name, g.pattern)
}

type oldDetectPattern struct {
	pattern  string
	literal  string // longest run without wildcards; every match contains it
	baseOnly bool
}

var oldDetectCache sync.Map // pattern → *oldDetectPattern

func oldCompiledDetect(p string) *oldDetectPattern {
	if g, ok := oldDetectCache.Load(p); ok {
		return g.(*oldDetectPattern)
	}
	g := oldCompileDetectGlob(p)
	oldDetectCache.Store(p, g)
	return g
}

func oldCompileDetectGlob(p string) *oldDetectPattern {
	g := &oldDetectPattern{pattern: p, baseOnly: !strings.Contains(p, "/")}
	for _, lit := range strings.FieldsFunc(p, func(r rune) bool { return r == '*' || r == '?' }) {
		if len(lit) > len(g.literal) {
			g.literal = lit
		}
	}
	// "**/x" also matches "x" at the top: the leading slash is not required.
	g.literal = strings.TrimPrefix(g.literal, "/")
	if strings.HasPrefix(p, "**/") && strings.HasPrefix(p[3:], g.literal) {
		g.literal = strings.TrimPrefix(g.literal, "/")
	}
	return g
}

func oldDetectAt(name, p string) bool {
	stars := strings.Count(p, "*")
	if stars < 2 {
		return oldDetectFrom(name, p, 0, 0, nil)
	}
	// Several stars backtrack exponentially on hostile input; remember
	// which (name, pattern) positions already failed.
	memo := make([]bool, (len(name)+1)*(len(p)+1))
	return oldDetectFrom(name, p, 0, 0, memo)
}

// oldDetectFrom matches name[i:] against p[j:]; memo, when set, marks failed
// positions.
func oldDetectFrom(name, p string, i, j int, memo []bool) bool {
	if memo != nil {
		k := i*(len(p)+1) + j
		if memo[k] {
			return false
		}
		// Marked on every return: a success returns true all the way up,
		// so the mark is only ever read after failures.
		defer func() { memo[k] = true }()
	}
	for j < len(p) {
		switch {
		case strings.HasPrefix(p[j:], "**"):
			k := j
			for k < len(p) && p[k] == '*' {
				k++
			}
			if k < len(p) && p[k] == '/' {
				// "**/x" also matches "x" at this level.
				if oldDetectFrom(name, p, i, k+1, memo) {
					return true
				}
			}
			for x := i; x <= len(name); x++ {
				if oldDetectFrom(name, p, x, k, memo) {
					return true
				}
			}
			return false
		case p[j] == '*':
			for x := i; x <= len(name); x++ {
				if oldDetectFrom(name, p, x, j+1, memo) {
					return true
				}
				if x < len(name) && name[x] == '/' {
					break
				}
			}
			return false
		case p[j] == '?':
			if i >= len(name) || name[i] == '/' {
				return false
			}
			i, j = i+1, j+1
		default:
			if i >= len(name) || name[i] != p[j] {
				return false
			}
			i, j = i+1, j+1
		}
	}
	return i == len(name)
}
