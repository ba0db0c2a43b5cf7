package detect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/schemas"
	"github.com/google/cel-go/common/types"
)

// The rule reference (`detect docs`, docs/rules.md) is generated from the
// loader's own document structs, the CEL type registry and the event
// schemas, so it names exactly the keys, fields and functions a rule file
// may use. The prose for each key and function lives here, next to the
// code; TestRuleReferenceComplete fails when a key or function has none.

// docSection is one YAML mapping of the rule language.
type docSection struct {
	title string
	key   string // prefix of the keyDocs entries
	typ   reflect.Type
	intro string
}

var docSections = []docSection{
	{"Rule file", "file", reflect.TypeFor[fileDoc](), "Every `*.yaml` / `*.yml` file under the rule directory (except `testdata/` and dot-directories) is a mapping with these keys; lists and macros are shared by every file."},
	{"Stream rule (`rules:` items)", "rule", reflect.TypeFor[ruleDoc](), "A stream rule reads events as they arrive. It is a match rule unless it has a `window` or a `sequence`."},
	{"`window`", "window", reflect.TypeFor[windowDoc](), "A window rule fires when `threshold` matching events (or distinct values) of one group fall within `duration` of event time."},
	{"`sequence`", "sequence", reflect.TypeFor[sequenceDoc](), "A sequence rule fires when its steps match in order, in one group, within `within`."},
	{"Sequence step (`sequence.steps` items)", "step", reflect.TypeFor[stepDoc](), ""},
	{"`dedup`", "dedup", reflect.TypeFor[dedupDoc](), "Repeats of an alert with the same key within `suppress` are folded into it and counted (alert.raised `suppressed`)."},
	{"SQL rule (`sql_rules:` items)", "sql_rule", reflect.TypeFor[sqlRuleDoc](), "A SQL rule is a single ClickHouse SELECT run on a schedule as the read-only user. It reads its range through the placeholders `{from}` and `{to}` and returns the columns `group_key`, `count`, `message` and `event_ids` (optionally `first_seen`, `last_seen`); each row is an alert."},
	{"Rule test (`tests:` items)", "test", reflect.TypeFor[testDoc](), "Inline tests run with `detect test DIR`, each on a fresh engine holding only its rule, disabled rules included."},
	{"Test event (`events:` items)", "event", reflect.TypeFor[eventDoc](), "A test event gives only what matters: everything else is filled with defaults (tenant `acme`, session `sess-1`, runner `runner-1`, agent `claude-code`), the hash chain is computed per session, and the result must pass the event schema, or the rule does not load."},
	{"Override file (`--overrides`, `DETECT_OVERRIDES`)", "overrides", reflect.TypeFor[overrideFile](), "An override file tunes shipped rules without copying them; `detect run`, `test`, `lint` and `replay` take it with `--overrides FILE` or the environment variable `DETECT_OVERRIDES`. Errors (an unknown rule, key or field, an exception that does not type-check) name the override file and line."},
	{"Override (`overrides:` items)", "override", reflect.TypeFor[overrideDoc](), ""},
	{"Exception (`exceptions:` items)", "exception", reflect.TypeFor[exceptionDoc](), "An exception is a CEL condition under which the rule does not match: the rule's match becomes `(match) && !(exception)`."},
}

// keyDocs describes every key of every section, as "section.key".
var keyDocs = map[string]string{
	"file.lists":     "Named lists of strings, used in any rule as `lists.NAME` (`x in lists.NAME` is a set lookup). Names match `[a-z][a-z0-9_]*`.",
	"file.macros":    "Named CEL snippets, used in any rule as `NAME()`; expanded in place and type-checked in the rule's context. A macro may use other macros, not itself.",
	"file.rules":     "Stream rules.",
	"file.sql_rules": "SQL rules.",

	"rule.id":          "Unique id: lower-case letters, digits and `. _ / -`, at most 128.",
	"rule.version":     "Version of the rule, letters, digits and `. _ -` (quote numbers: `\"1\"`); carried in alert.raised.",
	"rule.title":       "One-line title; the alert message unless `output` is given.",
	"rule.description": "What the rule finds and why it matters.",
	"rule.severity":    "`info`, `low`, `medium`, `high` or `critical`.",
	"rule.tags":        "Free-form tags (ATT&CK ids by convention).",
	"rule.enabled":     "`false` loads and tests the rule but does not run it. Default true.",
	"rule.on":          "Event types the rule reads, or `[\"*\"]` for every event (then there is no `payload`). A sequence gives `on` per step instead.",
	"rule.match":       "CEL expression of type bool over `event`, `payload` and `chain`. A sequence gives `match` per step instead.",
	"rule.group_by":    "CEL expressions whose values key the window, sequence and alert (default `[event.session_id]`). Rules whose first key is not the session are re-keyed across partitions.",
	"rule.window":      "Makes it a window rule (see `window`).",
	"rule.sequence":    "Makes it a sequence rule (see `sequence`).",
	"rule.action":      "`alert` (default), `hold_session` (also emits session.held) or `request_approval` (also emits approval.requested of kind session_hold).",
	"rule.dedup":       "Suppresses repeats (see `dedup`); without it every occurrence raises an alert.",
	"rule.output":      "Alert message template: text with `{{ CEL }}` placeholders, type-checked at load. Besides the rule's variables it may use `count`, `group`, `distinct`, `first_seen`, `last_seen` and, in a sequence, `capture.NAME`.",
	"rule.tests":       "Inline tests (see Rule test).",

	"window.duration":  "Length of the sliding event-time window (a duration).",
	"window.threshold": "Matches (or distinct values) per group within `duration` that fire the rule, 1 to 10000.",
	"window.distinct":  "CEL expression counted distinctly instead of counting events.",

	"sequence.within": "Time from the first step to the last (a duration).",
	"sequence.steps":  "2 to 8 steps, in order.",

	"step.name":     "Step name.",
	"step.on":       "Event types the step reads.",
	"step.match":    "CEL bool expression for the step.",
	"step.group_by": "Group of the step (default: the rule's `group_by`); every step's group must agree.",
	"step.capture":  "Mapping of names to CEL expressions whose values are kept for the output as `capture.NAME`.",

	"dedup.key":      "CEL expressions keying the dedup (default: the group).",
	"dedup.suppress": "How long repeats are folded into the first alert (a duration).",

	"sql_rule.id":          "As for stream rules.",
	"sql_rule.version":     "As for stream rules.",
	"sql_rule.title":       "As for stream rules.",
	"sql_rule.description": "As for stream rules.",
	"sql_rule.severity":    "As for stream rules.",
	"sql_rule.tags":        "As for stream rules.",
	"sql_rule.enabled":     "As for stream rules.",
	"sql_rule.action":      "As for stream rules.",
	"sql_rule.schedule":    "How often the query runs (a duration).",
	"sql_rule.lookback":    "How far back each run reads (default `schedule`, so runs tile time).",
	"sql_rule.query":       "The SELECT, checked at load by the SQL guard; reads `{from}` and `{to}`.",
	"sql_rule.min_count":   "Rows whose `count` is below it are dropped (default 1).",
	"sql_rule.dedup":       "As for stream rules; the key is the row's `group_key`.",
	"sql_rule.tests":       "Tests give `rows` (the query's answer), not events.",

	"test.name":   "Test name, unique within the rule (default `test N`).",
	"test.expect": "`fire` (at least one alert) or `no_fire`.",
	"test.count":  "Exact number of alerts expected (suppressed repeats not counted).",
	"test.start":  "RFC 3339 time of the first event (default 2026-03-02T10:00:00Z, a Monday).",
	"test.events": "The events, in order (stream rules).",
	"test.rows":   "Rows the query returns (SQL rules).",

	"event.file":     "A JSON event file, relative to the rule file, used as is (only `at` may be combined with it).",
	"event.type":     "Event type.",
	"event.at":       "`+5s` after the test start, `-1m` before it, an RFC 3339 time, or empty for one second after the previous event.",
	"event.repeat":   "Emit the event this many times.",
	"event.every":    "Spacing of repeats (default 1s).",
	"event.envelope": "Envelope fields to set (`session_id`, `tenant`, `actor`, `seq`, `prev_hash`, …).",
	"event.payload":  "Payload fields, merged over the type's defaults.",

	"overrides.overrides": "One entry per rule.",

	"override.rule":       "Id of the shipped rule (stream or SQL); an unknown id is an error.",
	"override.enabled":    "Switch the rule on or off.",
	"override.severity":   "New severity.",
	"override.action":     "New action.",
	"override.window":     "`{duration, threshold}`: either or both; only for window rules.",
	"override.sequence":   "`{within}`; only for sequence rules.",
	"override.dedup":      "`{suppress}`; adds dedup to a rule without it.",
	"override.schedule":   "New schedule; only for SQL rules.",
	"override.lookback":   "New lookback; only for SQL rules.",
	"override.min_count":  "New min_count; only for SQL rules.",
	"override.exceptions": "Conditions under which the rule does not match (stream rules).",
	"override.tests":      "Replaces the rule's tests (a tuned threshold usually needs new ones); events are inline.",

	"exception.name":  "What the exception is for.",
	"exception.match": "CEL bool expression in the rule's context; type-checked against every event type the rule (or step) reads.",
	"exception.step":  "For a sequence, the step it applies to (default every step).",
}

// functionDocs describes the helper functions (functionNames).
var functionDocs = map[string]string{
	"glob":            "Path glob (the dialect of `internal/glob`, as in policy files and sandbox profiles): `*` any run within a segment, `**` as a whole segment any number of segments, `?` one character, `[a-z]` a class, `\\` escapes; a pattern without `/` matches the base name at any depth. A pattern that does not compile matches nothing. With a list of patterns, any; with a list of names, any name against any pattern.",
	"argv_has_prefix": "The argument list starts with one of the given prefixes (each a space-separated argv prefix).",
	"in_cidr":         "The address (IPv4 or IPv6 text) is in the prefix, or in any of the prefixes; false for anything unparsable.",
	"lower":           "Lower-cased string.",
	"contains_any":    "The string contains any of the (non-empty) substrings.",
	"lookup":          "Value of `key` in a list of `key=value` strings, or the default.",
	"outside_hours":   "The time is outside a working-hours spec `ZONE HH:MM-HH:MM DAYS` (for example `Europe/Berlin 07:00-20:00 Mon-Fri`); false for a malformed spec.",
	"basename":        "Last element of a path.",
}

// RuleReference renders the rule language reference as Markdown.
func RuleReference() []byte {
	var b bytes.Buffer
	b.WriteString("# Rule language reference\n\n")
	b.WriteString("<!-- Generated by `detect docs` from internal/detect; do not edit. TestRuleReferenceCurrent checks it. -->\n\n")
	b.WriteString("Rules live in YAML files under a rule directory (`rules/`). `detect test DIR` loads them and runs their inline tests (`detect test FILE` runs one file's tests, with its directory's lists and macros), `detect lint DIR` reports problems, `detect replay --from -24h` runs them over stored events, `detect run` runs them on the stream, and `detect import-sigma` converts Sigma rules into them. Every key below is checked: an unknown key, a misspelt field or a type error is a load error with its file and line.\n\n")
	b.WriteString("Durations are written `90s`, `5m`, `2h` or `1d`.\n\n")
	for _, s := range docSections {
		fmt.Fprintf(&b, "## %s\n\n", s.title)
		if s.intro != "" {
			b.WriteString(s.intro + "\n\n")
		}
		b.WriteString("| key | type | meaning |\n|---|---|---|\n")
		for _, k := range yamlKeys(s.typ) {
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", k.name, docType(k.typ), mdCell(keyDocs[s.key+"."+k.name]))
		}
		b.WriteString("\n")
	}
	writeVariables(&b)
	writeFunctions(&b)
	writeFields(&b)
	return b.Bytes()
}

type yamlKey struct {
	name string
	typ  reflect.Type
}

func yamlKeys(t reflect.Type) []yamlKey {
	var out []yamlKey
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		out = append(out, yamlKey{name, f.Type})
	}
	return out
}

func docType(t reflect.Type) string {
	switch t {
	case srcExprType:
		return "CEL"
	case durationType:
		return "duration"
	case nodeType:
		return "mapping"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return docType(t.Elem())
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Uint64:
		return "integer"
	case reflect.Struct:
		return "mapping"
	case reflect.Map:
		return "mapping"
	case reflect.Slice:
		return "list of " + docType(t.Elem())
	}
	return t.String()
}

func mdCell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

func writeVariables(b *bytes.Buffer) {
	b.WriteString("## Variables\n\n")
	b.WriteString("| variable | type | meaning |\n|---|---|---|\n")
	b.WriteString("| `event` | envelope | The event's envelope (fields below). |\n")
	b.WriteString("| `payload` | per event type | The event's payload, typed by the event type (fields below); absent when `on` is `*`. |\n")
	b.WriteString("| `chain` | ChainInfo | The event's place in its hash chain as the engine has seen it (fields below). |\n")
	b.WriteString("| `lists.NAME` | list(string) | A list of the rule files. |\n")
	b.WriteString("| `count`, `group`, `distinct`, `first_seen`, `last_seen` | int, string, list(string), timestamp, timestamp | In `output` only: the alert's count, group key, distinct values, and time span. |\n")
	b.WriteString("| `capture.NAME` | string | In a sequence's `output` only: a value a step captured. |\n\n")
}

func writeFunctions(b *bytes.Buffer) {
	b.WriteString("## Functions\n\n")
	b.WriteString("Besides CEL's standard library (`size`, `in`, `matches`, `startsWith`, `endsWith`, `contains`, `has`, `exists`, `all`, `map`, `filter`, timestamps and durations) and the CEL strings extension (`split`, `join`, `lowerAscii`, `replace`, `trim`, `substring`, `indexOf`, …), rules may call these. Each is total: bad input gives false or the default, never an error.\n\n")
	b.WriteString("| function | signatures | meaning |\n|---|---|---|\n")
	env, err := newCELEnv(nil, nil)
	if err != nil {
		panic(err) // the environment is built from constants
	}
	fns := env.base.Functions()
	for _, name := range functionNames {
		var sigs []string
		if d := fns[name]; d != nil {
			for _, o := range d.OverloadDecls() {
				var args []string
				for _, a := range o.ArgTypes() {
					args = append(args, a.String())
				}
				sigs = append(sigs, fmt.Sprintf("`%s(%s) → %s`", name, strings.Join(args, ", "), o.ResultType()))
			}
		}
		fmt.Fprintf(b, "| `%s` | %s | %s |\n", name, strings.Join(sigs, "<br>"), mdCell(functionDocs[name]))
	}
	b.WriteString("\n")
}

// fieldRow is one field a rule can read.
type fieldRow struct {
	path, typ, desc string
}

func writeFields(b *bytes.Buffer) {
	env, err := newCELEnv(nil, nil)
	if err != nil {
		panic(err)
	}
	reg := env.reg
	envDesc := schemaDescriptions("envelope.json", "")
	b.WriteString("## Fields\n\n")
	b.WriteString("Types are CEL types: every integer is `int`, times are `google.protobuf.Timestamp`. A field an event does not carry reads as its zero value (`\"\"`, `0`, `false`, an empty list), so test with `!= \"\"` rather than `has()`.\n\n")
	b.WriteString("### `event` (every event type)\n\n")
	writeFieldTable(b, reg.fieldRows("event", reg.byGo[reflect.TypeFor[events.Envelope]()], envDesc, 0))
	b.WriteString("### `chain`\n\n")
	writeFieldTable(b, reg.fieldRows("chain", reg.byGo[reflect.TypeFor[ChainInfo]()], chainDocs, 0))
	for _, t := range events.EventTypes {
		pt, ok := payloadTypes[t]
		if !ok {
			continue
		}
		fmt.Fprintf(b, "### `payload` of `%s`\n\n", t)
		if d := schemaTitle(t + ".json"); d != "" {
			b.WriteString(d + "\n\n")
		}
		writeFieldTable(b, reg.fieldRows("payload", reg.byGo[pt], schemaDescriptions(t+".json", "payload"), 0))
	}
}

var chainDocs = map[string]string{
	"chain.seen":          "An earlier event of this chain (session_id, runner_id) was seen.",
	"chain.prev_seq":      "The highest seq seen before this event.",
	"chain.gap":           "How many seqs are missing before this event (0 if none).",
	"chain.regressed":     "seq is not above prev_seq: a replay, duplicate or reorder.",
	"chain.hash_mismatch": "seq follows prev_seq but prev_hash is not the hash of the event seen there: an edit or a forged insertion.",
}

func writeFieldTable(b *bytes.Buffer, rows []fieldRow) {
	b.WriteString("| field | type | meaning |\n|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(b, "| `%s` | %s | %s |\n", r.path, r.typ, mdCell(r.desc))
	}
	b.WriteString("\n")
}

func (r *typeRegistry) fieldRows(prefix string, ot *objType, desc map[string]string, depth int) []fieldRow {
	var out []fieldRow
	if ot == nil || depth > 4 {
		return nil
	}
	for _, name := range ot.names {
		p := prefix + "." + name
		t := ot.fields[name].ft.Type
		out = append(out, fieldRow{p, celTypeName(t), desc[p]})
		switch t.Kind() {
		case types.StructKind:
			out = append(out, r.fieldRows(p, r.byName[t.TypeName()], desc, depth+1)...)
		case types.ListKind:
			if ps := t.Parameters(); len(ps) == 1 && ps[0].Kind() == types.StructKind {
				out = append(out, r.fieldRows(p+"[]", r.byName[ps[0].TypeName()], desc, depth+1)...)
			}
		}
	}
	return out
}

func celTypeName(t *types.Type) string {
	return strings.ReplaceAll(t.String(), typePrefix, "")
}

// schemaDescriptions maps field paths ("payload.host", "event.actor.id")
// to their descriptions in schemas/v1/file; root is the $defs entry
// holding the fields ("" for the envelope's own properties).
func schemaDescriptions(file, root string) map[string]string {
	out := map[string]string{}
	doc := readSchema(file)
	if doc == nil {
		return out
	}
	node := doc
	prefix := "event"
	if root != "" {
		node = jsonPath(doc, "$defs", root)
		prefix = root
	}
	walkSchema(file, doc, node, prefix, out, 0)
	return out
}

func schemaTitle(file string) string {
	doc := readSchema(file)
	if doc == nil {
		return ""
	}
	s, _ := doc["description"].(string)
	return s
}

func readSchema(file string) map[string]any {
	data, err := schemas.FS.ReadFile("v1/" + file)
	if err != nil {
		return nil
	}
	var doc map[string]any
	if json.Unmarshal(data, &doc) != nil {
		return nil
	}
	return doc
}

func jsonPath(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		next, _ := m[k].(map[string]any)
		if next == nil {
			return nil
		}
		m = next
	}
	return m
}

// resolve follows a $ref within file or into another schema file.
func resolve(file string, doc, node map[string]any) (string, map[string]any, map[string]any) {
	for range 8 {
		ref, ok := node["$ref"].(string)
		if !ok {
			break
		}
		target, frag, _ := strings.Cut(ref, "#")
		if target != "" {
			file = target
			if doc = readSchema(file); doc == nil {
				return file, nil, node
			}
		}
		keys := strings.Split(strings.Trim(frag, "/"), "/")
		next := jsonPath(doc, keys...)
		if next == nil {
			break
		}
		if d, ok := node["description"].(string); ok {
			next = mapWith(next, "description", d) // the referring description is the specific one
		}
		node = next
	}
	return file, doc, node
}

func mapWith(m map[string]any, k string, v any) map[string]any {
	out := maps.Clone(m)
	out[k] = v
	return out
}

func walkSchema(file string, doc, node map[string]any, prefix string, out map[string]string, depth int) {
	if node == nil || depth > 6 {
		return
	}
	props, _ := node["properties"].(map[string]any)
	names := make([]string, 0, len(props))
	for k := range props {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		p, _ := props[k].(map[string]any)
		f, d, p := resolve(file, doc, p)
		if p == nil {
			continue
		}
		path := prefix + "." + k
		if s, ok := p["description"].(string); ok {
			out[path] = s
		}
		walkSchema(f, d, p, path, out, depth+1)
		if items, ok := p["items"].(map[string]any); ok {
			fi, di, items := resolve(f, d, items)
			walkSchema(fi, di, items, path+"[]", out, depth+1)
		}
	}
}
