// Package glob is the one glob dialect of policy files, detection rules and sandbox profiles.
//
// A pattern and a name are split at "/" into segments. Within a segment:
//
//	"*"      any run of characters except "/"
//	"?"      any one character (UTF-8) except "/"
//	"[a-z]"  one character of a class, "[^a-z]" one not in it, as in path.Match
//	"\c"     the character c itself
//
// A segment that is exactly "**" matches any number of whole segments, none
// included; as the last segment it matches one or more, so "a/**" matches
// what is under a but not a itself. "**" inside a longer segment is an
// error. Consecutive "**" segments count as one.
//
// A pattern with no "/" but a trailing one matches the name's base name (its
// last segment, trailing slashes ignored) at any depth, as in .gitignore:
// "*.pem" matches "/home/a/key.pem". Any other pattern matches the whole
// name: "/etc/*" matches "/etc/passwd" but not "etc/passwd". A trailing "/"
// is dropped. The empty name matches nothing.
//
// Options adapt where a pattern is applied, not its syntax: [Relative] for
// paths relative to a workspace, [Whole] for command-line arguments.
//
// Matching takes time proportional to the product of the pattern's and the
// name's lengths whatever the number of stars.
package glob

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// ErrBadPattern is matched (errors.Is) by every error of Compile.
var ErrBadPattern = errors.New("bad glob")

// Reasons a pattern does not compile, besides path.ErrBadPattern for a
// malformed class or escape.
var (
	ErrEmpty  = errors.New("empty pattern")
	ErrNoName = errors.New("matches nothing")
	ErrStars  = errors.New("** must be a whole path segment")
)

// Error is a pattern that does not compile and why (Err).
type Error struct {
	Pattern string
	Err     error
}

func (e *Error) Error() string { return fmt.Sprintf("glob %q: %v", e.Pattern, e.Err) }

// Unwrap gives ErrBadPattern and the reason.
func (e *Error) Unwrap() []error { return []error{ErrBadPattern, e.Err} }

// Pattern is a compiled pattern; it is safe for concurrent use.
type Pattern struct {
	src       string
	segs      []seg // for an unanchored pattern, the base-name segment alone
	written   []seg // the segments as written, for Holds
	anchored  bool
	slashless bool // unanchored as written ("**" alone is matched anchored)
	relative  bool
	whole     bool
	literal   string // a run every matching name contains
}

type segKind uint8

const (
	segLiteral  segKind = iota // equal
	segAny                     // "*": any one segment
	segPrefix                  // "lit*"
	segSuffix                  // "*lit"
	segContains                // "*lit*"
	segMatch                   // anything else: path.Match
	segStars                   // "**"
)

type seg struct {
	kind segKind
	src  string // the segment as written
	lit  string
}

type config struct {
	relative, whole bool
}

// Option changes how a pattern is applied.
type Option func(*config)

// Relative is for names relative to a root directory (a workspace): a
// leading "./" of the pattern is dropped, a leading "/" anchors a pattern
// at the root ("/.env" is only the root's .env), and the names matched are
// clean relative paths, of which "." (the root itself) matches nothing.
func Relative() Option { return func(c *config) { c.relative = true } }

// Whole makes the pattern match the whole name even without a "/" and
// keeps a trailing "/": for command-line arguments ("--output=*").
func Whole() Option { return func(c *config) { c.whole = true } }

// Compile compiles a pattern; an error is an *Error.
func Compile(pattern string, opts ...Option) (*Pattern, error) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	if pattern == "" {
		return nil, &Error{pattern, ErrEmpty}
	}
	p := &Pattern{src: pattern, relative: c.relative, whole: c.whole}
	s := pattern
	switch {
	case c.whole:
		p.anchored = true
	case c.relative:
		s = strings.TrimPrefix(s, "./")
		// As policy files always had it: "x//" is anchored.
		p.anchored = strings.Contains(strings.TrimSuffix(s, "/"), "/")
		s = strings.Trim(s, "/")
	default:
		s = strings.TrimRight(s, "/")
		p.anchored = strings.Contains(s, "/")
	}
	if s == "" {
		return nil, &Error{pattern, ErrNoName}
	}
	for _, part := range strings.Split(s, "/") {
		sg, err := compileSeg(part)
		if err != nil {
			return nil, &Error{pattern, err}
		}
		p.written = append(p.written, sg)
		if sg.kind == segStars && len(p.segs) > 0 && p.segs[len(p.segs)-1].kind == segStars {
			continue
		}
		p.segs = append(p.segs, sg)
		if len(sg.lit) > len(p.literal) {
			p.literal = sg.lit
		}
	}
	p.slashless = !p.anchored
	if !p.anchored && p.segs[0].kind == segStars {
		// "**" alone: every name.
		p.anchored = true
	}
	if p.anchored && p.segs[len(p.segs)-1].kind == segStars {
		// A trailing "**" matches one or more segments: any one, then
		// any number.
		p.segs = append(p.segs[:len(p.segs)-1:len(p.segs)-1], seg{kind: segAny, src: "*"}, seg{kind: segStars, src: "**"})
	}
	return p, nil
}

func compileSeg(s string) (seg, error) {
	if s == "**" {
		return seg{kind: segStars, src: s}, nil
	}
	if strings.Contains(s, "**") {
		return seg{}, ErrStars
	}
	if _, err := path.Match(s, ""); err != nil {
		return seg{}, err
	}
	if strings.ContainsAny(s, `?[\`) {
		return seg{kind: segMatch, src: s}, nil
	}
	first, last := strings.IndexByte(s, '*'), strings.LastIndexByte(s, '*')
	switch {
	case first < 0:
		return seg{kind: segLiteral, src: s, lit: s}, nil
	case s == "*":
		return seg{kind: segAny, src: s}, nil
	case first == last && first == len(s)-1:
		return seg{kind: segPrefix, src: s, lit: s[:first]}, nil
	case first == last && first == 0:
		return seg{kind: segSuffix, src: s, lit: s[1:]}, nil
	case first == 0 && last == len(s)-1 && strings.Count(s, "*") == 2:
		return seg{kind: segContains, src: s, lit: s[1:last]}, nil
	}
	g := seg{kind: segMatch, src: s}
	for _, lit := range strings.Split(s, "*") {
		if len(lit) > len(g.lit) {
			g.lit = lit
		}
	}
	return g, nil
}

func (g *seg) match(s string) bool {
	switch g.kind {
	case segLiteral:
		return s == g.lit
	case segAny:
		return true
	case segPrefix:
		return strings.HasPrefix(s, g.lit)
	case segSuffix:
		return strings.HasSuffix(s, g.lit)
	case segContains:
		return strings.Contains(s, g.lit)
	}
	ok, _ := path.Match(g.src, s)
	return ok
}

// String returns the pattern as written.
func (p *Pattern) String() string { return p.src }

// Anchored reports whether the pattern matches whole names rather than
// base names.
func (p *Pattern) Anchored() bool { return p.anchored }

// Last returns the pattern's last segment as written ("**" for a trailing
// "**").
func (p *Pattern) Last() string { return p.written[len(p.written)-1].src }

// Match reports whether name matches the pattern.
func (p *Pattern) Match(name string) bool {
	if (name == "" && !p.whole) || (p.relative && name == ".") {
		return false
	}
	// Most names fail on the pattern's longest literal; checking it first
	// keeps long pattern lists cheap.
	if p.literal != "" && !strings.Contains(name, p.literal) {
		return false
	}
	if !p.anchored {
		b := base(name)
		return b != "/" && p.segs[0].match(b)
	}
	return matchSegs(p.segs, name)
}

// base is path.Base of a non-empty name: the last segment with trailing
// slashes ignored, "/" for a name of slashes.
func base(name string) string {
	for len(name) > 1 && name[len(name)-1] == '/' {
		name = name[:len(name)-1]
	}
	if i := strings.LastIndexByte(name, '/'); i >= 0 && name != "/" {
		name = name[i+1:]
	}
	return name
}

// nextSeg returns the segment of name at off and the offset of the next
// one, len(name)+1 after the last.
func nextSeg(name string, off int) (string, int) {
	if i := strings.IndexByte(name[off:], '/'); i >= 0 {
		return name[off : off+i], off + i + 1
	}
	return name[off:], len(name) + 1
}

// matchSegs is wildcard matching over segments: every segment pattern but
// "**" takes exactly one name segment, so on a mismatch it is enough to
// let the last "**" take one more segment, and the work is bounded by
// segments(pattern) × segments(name).
func matchSegs(pat []seg, name string) bool {
	pi, ni := 0, 0
	star, starNi := -1, 0
	for ni <= len(name) {
		if pi < len(pat) && pat[pi].kind == segStars {
			star, starNi = pi, ni
			pi++
			continue
		}
		if pi < len(pat) {
			s, next := nextSeg(name, ni)
			if pat[pi].match(s) {
				pi, ni = pi+1, next
				continue
			}
		}
		if star < 0 {
			return false
		}
		_, starNi = nextSeg(name, starNi)
		pi, ni = star+1, starNi
	}
	for pi < len(pat) && pat[pi].kind == segStars {
		pi++
	}
	return pi == len(pat)
}

// MayContain reports whether a name under dir (dir followed by "/" and at
// least one segment) may match: a walker that gets false need not look
// inside dir.
func (p *Pattern) MayContain(dir string) bool {
	if !p.anchored || p.segs[0].kind == segStars {
		return true
	}
	if dir == "" || (p.relative && dir == ".") {
		return true
	}
	pi := 0
	for ni := 0; ni <= len(dir); pi++ {
		if pi == len(p.segs) {
			return false
		}
		if p.segs[pi].kind == segStars {
			return true
		}
		var s string
		s, ni = nextSeg(dir, ni)
		if !p.segs[pi].match(s) {
			return false
		}
	}
	return pi < len(p.segs)
}

// Holds reports whether dir, a directory, contains the fixed start of an
// anchored pattern: its segments match the pattern's first ones up to a
// "**" or to one short of its end, so that removing dir can remove a match
// (policy's rm -rf .git against .git/hooks/**). An unanchored pattern
// holds no directory, nor does a directory as deep as the pattern.
func (p *Pattern) Holds(dir string) bool {
	if p.slashless {
		return false
	}
	segs := p.written
	if dir == "." || dir == "" {
		return len(segs) > 0
	}
	n := 0
	for ni := 0; ni <= len(dir); n++ {
		if n >= len(segs) {
			return false
		}
		_, ni = nextSeg(dir, ni)
	}
	if n >= len(segs) {
		return false
	}
	pi := 0
	for ni := 0; ni <= len(dir); pi++ {
		if segs[pi].kind == segStars {
			return true
		}
		var s string
		s, ni = nextSeg(dir, ni)
		if !segs[pi].match(s) {
			return false
		}
	}
	return true
}
