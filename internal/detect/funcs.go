package detect

import (
	"net/netip"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // tenant time zones must not depend on the host's zoneinfo

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/decls"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"

	"github.com/agentaudit/agentaudit/internal/glob"
)

// Functions rules may call besides CEL's standard library and the strings
// extension. Each is total: bad input (an unparsable IP, a malformed hours
// spec) gives false or the default, never an error, so a rule cannot be made
// to fail open or closed by an attacker-controlled string.
var functionNames = []string{
	"glob", "argv_has_prefix", "in_cidr", "lower", "contains_any",
	"lookup", "outside_hours", "basename",
}

func helperFunctions() []cel.EnvOption {
	strList := cel.ListType(cel.StringType)
	// Rules are type-checked at load, so a statically chosen overload always
	// gets the argument types it declares; the runtime guard that checks
	// them again on every call cost a twentieth of the engine's time.
	// Dynamic dispatch (dyn arguments) keeps its guards.
	function := func(name string, opts ...cel.FunctionOpt) cel.EnvOption {
		return cel.Function(name, append(opts, decls.DisableTypeGuards(true))...)
	}
	return []cel.EnvOption{
		function("glob",
			cel.Overload("glob_string_string", []*cel.Type{cel.StringType, cel.StringType}, cel.BoolType,
				cel.BinaryBinding(func(s, p ref.Val) ref.Val {
					return types.Bool(globMatch(string(s.(types.String)), string(p.(types.String))))
				})),
			cel.Overload("glob_string_list", []*cel.Type{cel.StringType, strList}, cel.BoolType,
				cel.BinaryBinding(func(s, l ref.Val) ref.Val {
					return types.Bool(globAny(string(s.(types.String)), l))
				})),
			// Any of several names (the words of a command line) against
			// any of several patterns.
			cel.Overload("glob_list_list", []*cel.Type{strList, strList}, cel.BoolType,
				cel.BinaryBinding(func(names, l ref.Val) ref.Val {
					return types.Bool(anyString(names, func(n string) bool { return n != "" && globAny(n, l) }))
				})),
		),
		function("argv_has_prefix",
			cel.Overload("argv_has_prefix_list_list", []*cel.Type{strList, strList}, cel.BoolType,
				cel.BinaryBinding(argvHasPrefix))),
		function("in_cidr",
			cel.Overload("in_cidr_string_string", []*cel.Type{cel.StringType, cel.StringType}, cel.BoolType,
				cel.BinaryBinding(func(ip, c ref.Val) ref.Val {
					return types.Bool(inCIDR(string(ip.(types.String)), string(c.(types.String))))
				})),
			cel.Overload("in_cidr_string_list", []*cel.Type{cel.StringType, strList}, cel.BoolType,
				cel.BinaryBinding(func(ip, l ref.Val) ref.Val {
					s := string(ip.(types.String))
					return types.Bool(anyString(l, func(c string) bool { return inCIDR(s, c) }))
				})),
		),
		function("lower",
			cel.Overload("lower_string", []*cel.Type{cel.StringType}, cel.StringType,
				cel.UnaryBinding(func(s ref.Val) ref.Val { return types.String(strings.ToLower(string(s.(types.String)))) }))),
		function("basename",
			cel.Overload("basename_string", []*cel.Type{cel.StringType}, cel.StringType,
				cel.UnaryBinding(func(s ref.Val) ref.Val { return types.String(path.Base(string(s.(types.String)))) }))),
		function("contains_any",
			cel.Overload("contains_any_string_list", []*cel.Type{cel.StringType, strList}, cel.BoolType,
				cel.BinaryBinding(func(s, l ref.Val) ref.Val {
					str := string(s.(types.String))
					return types.Bool(anyString(l, func(sub string) bool { return sub != "" && strings.Contains(str, sub) }))
				}))),
		function("lookup",
			cel.Overload("lookup_list_string_string", []*cel.Type{strList, cel.StringType, cel.StringType}, cel.StringType,
				cel.FunctionBinding(func(args ...ref.Val) ref.Val {
					key := string(args[1].(types.String)) + "="
					out := args[2]
					anyString(args[0], func(kv string) bool {
						if v, ok := strings.CutPrefix(kv, key); ok {
							out = types.String(v)
							return true
						}
						return false
					})
					return out
				}))),
		function("outside_hours",
			cel.Overload("outside_hours_timestamp_string", []*cel.Type{cel.TimestampType, cel.StringType}, cel.BoolType,
				cel.BinaryBinding(func(ts, spec ref.Val) ref.Val {
					h, ok := parseHours(string(spec.(types.String)))
					if !ok {
						return types.False
					}
					return types.Bool(!h.contains(ts.(types.Timestamp).Time))
				}))),
	}
}

// anyString calls f on each string of a CEL list until it returns true.
func anyString(l ref.Val, f func(string) bool) bool {
	// Lists from rule files and payloads are []string underneath: read
	// them directly rather than boxing each element into a CEL value.
	if ss, ok := l.Value().([]string); ok {
		for _, s := range ss {
			if f(s) {
				return true
			}
		}
		return false
	}
	lst, ok := l.(traits.Lister)
	if !ok {
		return false
	}
	it := lst.Iterator()
	for it.HasNext() == types.True {
		if s, ok := it.Next().(types.String); ok && f(string(s)) {
			return true
		}
	}
	return false
}

func stringsOf(l ref.Val) []string {
	var out []string
	anyString(l, func(s string) bool { out = append(out, s); return false })
	return out
}

// argvHasPrefix reports whether argv starts with prefix; the first element
// is compared by base name so /usr/bin/git matches git.
func argvHasPrefix(a, p ref.Val) ref.Val {
	argv, prefix := stringsOf(a), stringsOf(p)
	if len(prefix) == 0 || len(argv) < len(prefix) {
		return types.False
	}
	for i, want := range prefix {
		got := argv[i]
		if i == 0 {
			got = path.Base(got)
		}
		if got != want {
			return types.False
		}
	}
	return types.True
}

func inCIDR(ip, cidr string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return false
	}
	return p.Contains(a.Unmap())
}

// globMatch matches name against a pattern in the dialect of package glob:
// '*' is any run of characters except '/', '**' a whole segment for any
// number of segments, '?' one character except '/', '[…]' a class. A
// pattern without '/' matches the base name, as in gitignore, so "*.pem"
// matches "/home/a/key.pem". A pattern that does not compile matches
// nothing.
func globMatch(name, pattern string) bool { return compiledGlob(pattern).match(name) }

// globAny reports whether name matches any pattern of list l; the patterns
// of a rule file's list are compiled once at load.
func globAny(name string, l ref.Val) bool {
	if cl, ok := l.(*constList); ok {
		for _, g := range cl.globs {
			if g.match(name) {
				return true
			}
		}
		return false
	}
	return anyString(l, func(p string) bool { return globMatch(name, p) })
}

// globPattern is a compiled pattern, nil for one that does not compile.
type globPattern struct{ p *glob.Pattern }

func (g globPattern) match(name string) bool { return g.p != nil && g.p.Match(name) }

var globCache sync.Map // pattern → globPattern

func compiledGlob(p string) globPattern {
	if g, ok := globCache.Load(p); ok {
		return g.(globPattern)
	}
	g := compileGlob(p)
	globCache.Store(p, g)
	return g
}

func compileGlob(p string) globPattern {
	g, _ := glob.Compile(p)
	return globPattern{g}
}

// hoursSpec is a tenant's working time: "Europe/Berlin 07:00-20:00 Mon-Fri".
// The days part is optional (every day).
type hoursSpec struct {
	loc      *time.Location
	from, to int // minutes after midnight; to may be < from (overnight)
	days     [7]bool
}

var hoursCache sync.Map // spec string → *hoursSpec (nil when invalid)

func parseHours(s string) (*hoursSpec, bool) {
	if v, ok := hoursCache.Load(s); ok {
		h := v.(*hoursSpec)
		return h, h != nil
	}
	h := parseHoursUncached(s)
	hoursCache.Store(s, h)
	return h, h != nil
}

var weekdays = map[string]time.Weekday{"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}

func parseHoursUncached(s string) *hoursSpec {
	f := strings.Fields(s)
	if len(f) < 2 || len(f) > 3 {
		return nil
	}
	loc, err := time.LoadLocation(f[0])
	if err != nil {
		return nil
	}
	a, b, ok := strings.Cut(f[1], "-")
	if !ok {
		return nil
	}
	from, ok1 := parseClock(a)
	to, ok2 := parseClock(b)
	if !ok1 || !ok2 {
		return nil
	}
	h := &hoursSpec{loc: loc, from: from, to: to}
	if len(f) == 2 {
		h.days = [7]bool{true, true, true, true, true, true, true}
		return h
	}
	for _, part := range strings.Split(strings.ToLower(f[2]), ",") {
		x, y, rng := strings.Cut(part, "-")
		d1, ok1 := weekdays[x]
		if !ok1 {
			return nil
		}
		if !rng {
			h.days[d1] = true
			continue
		}
		d2, ok2 := weekdays[y]
		if !ok2 {
			return nil
		}
		for d := d1; ; d = (d + 1) % 7 {
			h.days[d] = true
			if d == d2 {
				break
			}
		}
	}
	return h
}

func parseClock(s string) (int, bool) {
	hh, mm, ok := strings.Cut(s, ":")
	if !ok {
		return 0, false
	}
	h, err1 := strconv.Atoi(hh)
	m, err2 := strconv.Atoi(mm)
	if err1 != nil || err2 != nil || h < 0 || h > 24 || m < 0 || m > 59 || (h == 24 && m != 0) {
		return 0, false
	}
	return h*60 + m, true
}

func (h *hoursSpec) contains(t time.Time) bool {
	lt := t.In(h.loc)
	min := lt.Hour()*60 + lt.Minute()
	if h.from <= h.to {
		return h.days[lt.Weekday()] && min >= h.from && min < h.to
	}
	// Overnight shift: the part after midnight belongs to the previous day.
	if min >= h.from {
		return h.days[lt.Weekday()]
	}
	return min < h.to && h.days[(lt.Weekday()+6)%7]
}
