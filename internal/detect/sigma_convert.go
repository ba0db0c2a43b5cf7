package detect

import (
	"math/bits"
	"net/netip"
	"path"
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/agentaudit/agentaudit/internal/events"
)

// sigmaFieldKind is how a mapped field compares.
type sigmaFieldKind int

const (
	sigmaString sigmaFieldKind = iota
	sigmaInt
	sigmaIP // a string that cidr may test
)

// sigmaKey is one of our fields a Sigma field maps onto.
type sigmaKey struct {
	expr string // CEL, in the target's environment
	kind sigmaFieldKind
}

// sigmaTarget is one event type a Sigma category converts onto.
type sigmaTarget struct {
	suffix    string // appended to the rule id ("" for the first target)
	title     string // appended to the title
	eventType string
	guard     string // CEL conjunct that narrows the events
	// keys maps Sigma field names (compared case-insensitively) onto our
	// keys; refused names a Sigma field we know but cannot map, and why.
	fields  map[string]string
	keys    map[string]sigmaKey
	refused map[string]string
	// render builds candidate test events from witness values by key.
	render func(vals map[string]string, neutral int) []sigmaEvent
}

// sigmaEvent is a generated test event with the values our fields show.
type sigmaEvent struct {
	payload  map[string]any
	envelope map[string]any
	view     map[string]string
}

// sigmaShellTools are the tool names of shell tool calls, as the
// shell_tools list in rules/common.yaml; an imported rule file stands
// alone, so it carries its own copy.
var sigmaShellTools = []string{"bash", "sh", "shell", "exec", "run_command", "terminal", "exec_command", "local_shell"}

// Expressions over a shell tool call: its command line, and its program
// as a path (a bare name gets a leading / so `Image|endswith: /curl`
// matches `curl …`).
const (
	shellCommandExpr = `(size(payload.arguments.argv) > 0 ? payload.arguments.argv.join(" ") : payload.arguments.command)`
	shellProgExpr    = `(size(payload.arguments.argv) > 0 ? payload.arguments.argv[0] : payload.arguments.command.split(" ")[0])`
	shellImageExpr   = `(` + shellProgExpr + `.contains("/") ? ` + shellProgExpr + ` : "/" + ` + shellProgExpr + `)`
)

func shellImage(command string) string {
	prog, _, _ := strings.Cut(command, " ")
	if strings.Contains(prog, "/") {
		return prog
	}
	return "/" + prog
}

var processFields = map[string]string{
	"image": "image", "commandline": "command_line", "currentdirectory": "cwd", "user": "user",
}

var processRefused = map[string]string{
	"parentimage":       "process.exec records the parent's pid, not its image",
	"parentcommandline": "process.exec records the parent's pid, not its command line",
	"originalfilename":  "PE metadata does not exist on Linux",
	"processid":         "pids are per sandbox and say nothing across sessions",
	"parentprocessid":   "pids are per sandbox and say nothing across sessions",
	"logonid":           "there are no logon sessions in a sandbox",
	"integritylevel":    "integrity levels are a Windows concept",
	"hashes":            "process.exec does not hash executables",
}

var egressFields = map[string]string{
	"cs-host": "host", "destinationhostname": "host", "r-dns": "host",
	"dst_ip": "ip", "destinationip": "ip", "dst_port": "port", "destinationport": "port",
	"cs-method": "method", "sc-status": "status", "user": "user",
}

var egressRefused = map[string]string{
	"c-uri":           "net.egress records host and port, not the URL (HTTPS is tunnelled)",
	"c-uri-query":     "net.egress records host and port, not the URL (HTTPS is tunnelled)",
	"c-uri-extension": "net.egress records host and port, not the URL (HTTPS is tunnelled)",
	"c-uri-stem":      "net.egress records host and port, not the URL (HTTPS is tunnelled)",
	"c-useragent":     "net.egress does not record the User-Agent header",
	"cs-referrer":     "net.egress does not record the Referer header",
	"cs-cookie":       "net.egress does not record cookies",
	"c-ip":            "the source is always the sandbox",
	"src_ip":          "the source is always the sandbox",
	"sourceip":        "the source is always the sandbox",
	"src_port":        "source ports are not recorded",
	"sourceport":      "source ports are not recorded",
	"image":           "net.egress does not record the connecting program",
	"sc-bytes":        "byte counts are on the closing record; match them in a rule of your own",
	"cs-bytes":        "byte counts are on the closing record; match them in a rule of your own",
}

var userKey = sigmaKey{expr: "event.actor.id", kind: sigmaString}

var processExecTarget = &sigmaTarget{
	eventType: events.TypeProcessExec,
	fields:    processFields,
	refused:   processRefused,
	keys: map[string]sigmaKey{
		"image":        {expr: "payload.exe"},
		"command_line": {expr: `payload.argv.join(" ")`},
		"cwd":          {expr: "payload.cwd"},
		"user":         userKey,
	},
	render: func(v map[string]string, neutral int) []sigmaEvent {
		exe := pick(v["image"], []string{"/opt/agentaudit/benign/bin/noop", "/srv/tools/idle"}[neutral])
		cmd := pick(v["command_line"], []string{"noop --quiet", "idle -n 1"}[neutral])
		cwd := pick(v["cwd"], []string{"/workspace", "/srv/build"}[neutral])
		argv := make([]any, 0)
		for _, a := range strings.Split(cmd, " ") {
			argv = append(argv, a)
		}
		ev := sigmaEvent{
			payload: map[string]any{"pid": 4242, "ppid": 1, "argv": argv, "argv_truncated": false, "exe": exe, "cwd": cwd,
				"decision": "allow", "reason_code": "allowlisted", "background": false, "root": true},
			view: map[string]string{"image": exe, "command_line": cmd, "cwd": cwd, "user": userOf(v, neutral)},
		}
		ev.envelope = actorEnvelope(v, neutral)
		return []sigmaEvent{ev}
	},
}

var shellCallTarget = &sigmaTarget{
	suffix:    ".shell",
	title:     " (shell tool call)",
	eventType: events.TypeToolCallRequested,
	guard:     "payload.tool_name in " + celStringList(sigmaShellTools),
	fields:    processFields,
	refused:   processRefused,
	keys: map[string]sigmaKey{
		"image":        {expr: shellImageExpr},
		"command_line": {expr: shellCommandExpr},
		"cwd":          {expr: "payload.arguments.cwd"},
		"user":         userKey,
	},
	render: func(v map[string]string, neutral int) []sigmaEvent {
		var cmds []string
		img, hasImg := v["image"]
		cl, hasCL := v["command_line"]
		switch {
		case hasCL && hasImg:
			cmds = []string{cl, img + " " + cl, path.Base(img) + " " + cl}
		case hasCL:
			cmds = []string{cl}
		case hasImg:
			cmds = []string{img + " --help", img}
		default:
			cmds = []string{[]string{"noop --quiet", "idle -n 1"}[neutral]}
		}
		cwd := pick(v["cwd"], []string{"/workspace", "/srv/build"}[neutral])
		var out []sigmaEvent
		for _, c := range cmds {
			if c == "" {
				continue
			}
			out = append(out, sigmaEvent{
				payload:  map[string]any{"tool_name": "bash", "arguments": map[string]any{"command": c, "cwd": cwd}},
				envelope: actorEnvelope(v, neutral),
				view:     map[string]string{"image": shellImage(c), "command_line": c, "cwd": cwd, "user": userOf(v, neutral)},
			})
		}
		return out
	},
}

var egressTarget = &sigmaTarget{
	eventType: events.TypeNetEgress,
	guard:     `payload.phase == "decision"`,
	fields:    egressFields,
	refused:   egressRefused,
	keys: map[string]sigmaKey{
		"host":   {expr: "payload.host"},
		"ip":     {expr: "payload.resolved_ip", kind: sigmaIP},
		"port":   {expr: "payload.port", kind: sigmaInt},
		"method": {expr: "payload.method"},
		"status": {expr: "payload.status_code", kind: sigmaInt},
		"user":   userKey,
	},
	render: func(v map[string]string, neutral int) []sigmaEvent {
		host := pick(v["host"], []string{"benign.example.org", "static.example.net"}[neutral])
		ip := pick(v["ip"], []string{"192.0.2.10", "198.51.100.7"}[neutral])
		port := pick(v["port"], []string{"443", "8443"}[neutral])
		method := pick(v["method"], []string{"CONNECT", "GET"}[neutral])
		status := pick(v["status"], []string{"200", "204"}[neutral])
		pn, err := strconv.Atoi(port)
		if err != nil || pn < 1 || pn > 65535 {
			return nil
		}
		sn, err := strconv.Atoi(status)
		if err != nil || sn < 100 || sn > 599 {
			return nil
		}
		return []sigmaEvent{{
			payload: map[string]any{"host": host, "port": pn, "resolved_ip": ip, "method": method, "status_code": sn,
				"decision": "allow", "reason_code": "allowlisted"},
			envelope: actorEnvelope(v, neutral),
			view:     map[string]string{"host": host, "ip": ip, "port": port, "method": method, "status": status, "user": userOf(v, neutral)},
		}}
	},
}

// sigmaTargets lists the targets of each supported category.
var sigmaTargets = map[string][]*sigmaTarget{
	"process_creation":   {processExecTarget, shellCallTarget},
	"proxy":              {egressTarget},
	"network_connection": {egressTarget},
	"firewall":           {egressTarget},
}

func sigmaCategories() []string {
	var out []string
	for c := range sigmaTargets {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

func pick(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func userOf(v map[string]string, neutral int) string {
	return pick(v["user"], []string{"claude-code", "codex"}[neutral])
}

func actorEnvelope(v map[string]string, neutral int) map[string]any {
	if v["user"] == "" && neutral == 0 {
		return nil // the test default actor is claude-code
	}
	return map[string]any{"actor": map[string]any{"type": "agent", "id": userOf(v, neutral)}}
}

func celStringList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = strconv.Quote(x)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// ---- matchers: one tree that both prints CEL and evaluates in Go ----

type sigmaMatch struct {
	op   string // and, or, not, cmp
	kids []*sigmaMatch
	key  string
	cmp  string // eq, contains, prefix, suffix, regex, cidr, int
	val  string // lower-cased for eq/contains/prefix/suffix
	raw  string // the value as written, for witnesses
	re   *regexp.Regexp
}

func (m *sigmaMatch) cel(t *sigmaTarget) string { return m.celSep(t, " ") }

// celTop prints the top level's operands one per line.
func (m *sigmaMatch) celTop(t *sigmaTarget) string { return m.celSep(t, "\n ") }

func (m *sigmaMatch) celSep(t *sigmaTarget, space string) string {
	switch m.op {
	case "and", "or":
		sep := " &&" + space
		if m.op == "or" {
			sep = " ||" + space
		}
		parts := make([]string, len(m.kids))
		for i, k := range m.kids {
			parts[i] = k.cel(t)
		}
		return "(" + strings.Join(parts, sep) + ")"
	case "not":
		k := m.kids[0].cel(t)
		if !strings.HasPrefix(k, "(") || m.kids[0].op == "cmp" {
			k = "(" + k + ")"
		}
		return "!" + k
	}
	f := t.keys[m.key].expr
	q := strconv.Quote(m.val)
	switch m.cmp {
	case "eq":
		return "lower(" + f + ") == " + q
	case "contains":
		return "lower(" + f + ").contains(" + q + ")"
	case "prefix":
		return "lower(" + f + ").startsWith(" + q + ")"
	case "suffix":
		return "lower(" + f + ").endsWith(" + q + ")"
	case "regex":
		return f + ".matches(" + q + ")"
	case "cidr":
		return "in_cidr(" + f + ", " + q + ")"
	default: // int
		return f + " == " + m.val
	}
}

func (m *sigmaMatch) eval(view map[string]string) bool {
	switch m.op {
	case "and":
		for _, k := range m.kids {
			if !k.eval(view) {
				return false
			}
		}
		return true
	case "or":
		for _, k := range m.kids {
			if k.eval(view) {
				return true
			}
		}
		return false
	case "not":
		return !m.kids[0].eval(view)
	}
	s := view[m.key]
	ls := strings.ToLower(s)
	switch m.cmp {
	case "eq":
		return ls == m.val
	case "contains":
		return strings.Contains(ls, m.val)
	case "prefix":
		return strings.HasPrefix(ls, m.val)
	case "suffix":
		return strings.HasSuffix(ls, m.val)
	case "regex":
		return m.re.MatchString(s)
	case "cidr":
		return inCIDR(s, m.val)
	default:
		return s == m.val
	}
}

// sigmaCompiled is a Sigma rule compiled for one target.
type sigmaCompiled struct {
	target   *sigmaTarget
	match    *sigmaMatch
	searches map[string]*sigmaMatch
	// witness constraints per search, per alternative.
	cons map[string][][]*sigmaMatch
}

// resolveField maps a Sigma field onto a key of t.
func (r *sigmaRule) resolveField(t *sigmaTarget, field string) (string, error) {
	lf := strings.ToLower(field)
	if k, ok := t.fields[lf]; ok {
		return k, nil
	}
	if why, ok := t.refused[lf]; ok {
		return "", r.fail(sigmaUnmappedField, field, "field %s cannot be mapped onto %s: %s", field, t.eventType, why)
	}
	var known []string
	for f := range t.fields {
		known = append(known, f)
	}
	slices.Sort(known)
	return "", r.fail(sigmaUnknownField, field, "unknown field %s for category %s (known, any case: %s)", field, r.category, strings.Join(known, ", "))
}

func (r *sigmaRule) compileFor(t *sigmaTarget) (*sigmaCompiled, error) {
	c := &sigmaCompiled{target: t, searches: map[string]*sigmaMatch{}, cons: map[string][][]*sigmaMatch{}}
	for _, s := range r.searches {
		or := &sigmaMatch{op: "or"}
		var cons [][]*sigmaMatch
		for _, alt := range s.alts {
			and := &sigmaMatch{op: "and"}
			var altCons []*sigmaMatch
			for _, f := range alt {
				key, err := r.resolveField(t, f.field)
				if err != nil {
					return nil, err
				}
				vm := &sigmaMatch{op: "or"}
				if f.all {
					vm.op = "and"
				}
				for _, v := range f.vals {
					m, err := r.valueMatch(s.name, f, key, t.keys[key].kind, v)
					if err != nil {
						return nil, err
					}
					vm.kids = append(vm.kids, m)
				}
				if f.all {
					altCons = append(altCons, vm.kids...)
				} else {
					altCons = append(altCons, vm.kids[0])
				}
				and.kids = append(and.kids, flatten(vm))
			}
			or.kids = append(or.kids, flatten(and))
			cons = append(cons, altCons)
		}
		c.searches[s.name] = flatten(or)
		c.cons[s.name] = cons
	}
	c.match = c.build(r.condition)
	return c, nil
}

func flatten(m *sigmaMatch) *sigmaMatch {
	if (m.op == "and" || m.op == "or") && len(m.kids) == 1 {
		return m.kids[0]
	}
	return m
}

func (c *sigmaCompiled) build(cond *sigmaCond) *sigmaMatch {
	if cond.op == "search" {
		return c.searches[cond.name]
	}
	m := &sigmaMatch{op: cond.op}
	for _, k := range cond.kids {
		m.kids = append(m.kids, c.build(k))
	}
	return m
}

// valueMatch turns one value of a field into a comparison.
func (r *sigmaRule) valueMatch(search string, f *sigmaField, key string, kind sigmaFieldKind, v sigmaValue) (*sigmaMatch, error) {
	m := &sigmaMatch{op: "cmp", key: key, raw: v.s}
	if kind == sigmaInt {
		n, err := strconv.ParseInt(v.s, 10, 64)
		if f.op != "" || err != nil {
			return nil, r.fail(sigmaUnsupportedValue, f.field, "search %s, field %s is a number: it takes plain integer values, not %q%s", search, f.field, v.s, modNote(f.op))
		}
		m.cmp, m.val = "int", strconv.FormatInt(n, 10)
		return m, nil
	}
	switch f.op {
	case "re":
		m.cmp, m.val, m.re = "regex", v.s, regexp.MustCompile(v.s)
		return m, nil
	case "cidr":
		if kind != sigmaIP {
			return nil, r.fail(sigmaUnsupportedModifier, "cidr", "search %s: modifier cidr applies to IP address fields, not %s", search, f.field)
		}
		m.cmp, m.val = "cidr", v.s
		return m, nil
	}
	toks := sigmaWildcards(v.s)
	lead, trail := f.op == "contains" || f.op == "endswith", f.op == "contains" || f.op == "startswith"
	if len(toks) > 0 && toks[0] == "*" {
		lead, toks = true, toks[1:]
	}
	if len(toks) > 0 && toks[len(toks)-1] == "*" {
		trail, toks = true, toks[:len(toks)-1]
	}
	inner := slices.ContainsFunc(toks, func(t string) bool { return t == "*" || t == "?" })
	if inner {
		var b strings.Builder
		b.WriteString("(?is)")
		if !lead {
			b.WriteString("^")
		}
		for _, t := range toks {
			switch t {
			case "*":
				b.WriteString(".*")
			case "?":
				b.WriteString(".")
			default:
				b.WriteString(regexp.QuoteMeta(t[1:]))
			}
		}
		if !trail {
			b.WriteString("$")
		}
		m.cmp, m.val = "regex", b.String()
		m.re = regexp.MustCompile(m.val)
		m.raw = sigmaGlobWitness(toks)
		return m, nil
	}
	lit := strings.ToLower(sigmaGlobWitness(toks))
	m.raw = sigmaGlobWitness(toks)
	switch {
	case lead && trail:
		m.cmp = "contains"
	case lead:
		m.cmp = "suffix"
	case trail:
		m.cmp = "prefix"
	default:
		m.cmp = "eq"
	}
	m.val = lit
	return m, nil
}

func modNote(op string) string {
	if op == "" {
		return ""
	}
	return " with modifier " + op
}

// sigmaWildcards splits a Sigma value into "*", "?" and literal runs
// (prefixed with "L"); \* \? and \\ escape, any other \ is literal.
func sigmaWildcards(s string) []string {
	var out []string
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			out = append(out, "L"+lit.String())
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s) && (s[i+1] == '*' || s[i+1] == '?' || s[i+1] == '\\'):
			lit.WriteByte(s[i+1])
			i++
		case c == '*' || c == '?':
			flush()
			if c == '*' && len(out) > 0 && out[len(out)-1] == "*" {
				continue
			}
			out = append(out, string(c))
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return out
}

func sigmaGlobWitness(toks []string) string {
	var b strings.Builder
	for _, t := range toks {
		switch t {
		case "*":
		case "?":
			b.WriteString("x")
		default:
			b.WriteString(t[1:])
		}
	}
	return b.String()
}

// ---- test generation ----

// witness builds values per key that satisfy the given comparisons.
func witness(cons []*sigmaMatch) map[string]string {
	type parts struct{ eq, prefix, suffix, mid []string }
	byKey := map[string]*parts{}
	var keys []string
	for _, m := range cons {
		p := byKey[m.key]
		if p == nil {
			p = &parts{}
			byKey[m.key] = p
			keys = append(keys, m.key)
		}
		switch m.cmp {
		case "eq", "int":
			p.eq = append(p.eq, m.raw)
		case "prefix":
			p.prefix = append(p.prefix, m.raw)
		case "suffix":
			p.suffix = append(p.suffix, m.raw)
		case "contains":
			p.mid = append(p.mid, m.raw)
		case "regex":
			if m.raw != "" && m.re.MatchString(m.raw) {
				p.mid = append(p.mid, m.raw)
			} else {
				p.mid = append(p.mid, regexWitness(m.val))
			}
		case "cidr":
			pf, _ := netip.ParsePrefix(m.val)
			a := pf.Masked().Addr()
			if pf.Bits() < a.BitLen() {
				a = a.Next()
			}
			p.eq = append(p.eq, a.String())
		}
	}
	out := map[string]string{}
	for _, k := range keys {
		p := byKey[k]
		if len(p.eq) > 0 {
			out[k] = p.eq[0]
			continue
		}
		sep := "" // a host or address has no spaces
		if k == "command_line" {
			sep = " "
		}
		out[k] = strings.Join(p.prefix, "") + strings.Join(p.mid, sep) + strings.Join(p.suffix, "")
	}
	return out
}

// regexWitness returns a short string the regular expression matches
// (best effort; the caller checks).
func regexWitness(expr string) string {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return ""
	}
	var b strings.Builder
	var walk func(*syntax.Regexp, int)
	walk = func(re *syntax.Regexp, depth int) {
		if depth > 100 || b.Len() > 4096 {
			return
		}
		switch re.Op {
		case syntax.OpLiteral:
			b.WriteString(string(re.Rune))
		case syntax.OpCharClass:
			if len(re.Rune) >= 2 {
				r := re.Rune[0]
				// Prefer a printable, non-space character of the class.
				for i := 0; i+1 < len(re.Rune); i += 2 {
					if lo, hi := re.Rune[i], re.Rune[i+1]; hi >= 'a' && lo <= 'z' {
						r = max(lo, 'a')
						break
					} else if unicode.IsPrint(lo) && lo != ' ' {
						r = lo
					}
				}
				b.WriteRune(r)
			}
		case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
			b.WriteString("x")
		case syntax.OpCapture:
			walk(re.Sub[0], depth+1)
		case syntax.OpConcat:
			for _, s := range re.Sub {
				walk(s, depth+1)
			}
		case syntax.OpAlternate:
			walk(re.Sub[0], depth+1)
		case syntax.OpPlus:
			walk(re.Sub[0], depth+1)
		case syntax.OpRepeat:
			for range min(re.Min, 16) {
				walk(re.Sub[0], depth+1)
			}
		}
	}
	walk(re, 0)
	return b.String()
}

// generateTests finds an event the rule matches and one it does not, by
// making chosen searches true with witnesses and evaluating the condition.
func (c *sigmaCompiled) generateTests(r *sigmaRule) (pos, neg *sigmaEvent, err error) {
	names := make([]string, 0, len(r.searches))
	for _, s := range r.searches {
		names = append(names, s.name)
	}
	n := min(len(names), 10)
	masks := make([]uint, 0, 1<<n)
	for m := uint(0); m < 1<<n; m++ {
		masks = append(masks, m)
	}
	sort.SliceStable(masks, func(i, j int) bool { return bits.OnesCount(masks[i]) < bits.OnesCount(masks[j]) })
	for _, mask := range masks {
		for variant := range 2 {
			var cons []*sigmaMatch
			for i := range n {
				if mask&(1<<i) != 0 {
					alts := c.cons[names[i]]
					cons = append(cons, alts[min(variant, len(alts)-1)]...)
				}
			}
			vals := witness(cons)
			for neutral := range 2 {
				for _, ev := range c.target.render(vals, neutral) {
					ok := c.match.eval(ev.view)
					if ok && pos == nil {
						pos = &ev
					}
					if !ok && neg == nil {
						neg = &ev
					}
					if pos != nil && neg != nil {
						return pos, neg, nil
					}
				}
			}
		}
	}
	what := "matching"
	if pos != nil {
		what = "non-matching"
	}
	return nil, nil, r.fail(sigmaNoTest, "condition", "no %s test event could be generated for %s; the condition may be always true or always false", what, c.target.eventType)
}
