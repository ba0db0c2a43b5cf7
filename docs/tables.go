// Package docs generates the reference pages in this directory from the
// code that defines what they describe, and its tests fail when a page is
// stale (`go test ./docs -update` rewrites them).
package docs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	chschema "github.com/agentaudit/agentaudit/deploy/clickhouse"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/store"
	"github.com/agentaudit/agentaudit/schemas"
)

// relation is a table or view as the migrations leave it.
type relation struct {
	name string
	view bool
	desc string
	from string // migration that created it
	cols []column
}

type column struct {
	name   string
	typ    string // portable type
	modern string // type on servers that run the gated migrations
}

var (
	createRe    = regexp.MustCompile(`(?is)^CREATE\s+(TABLE|VIEW|MATERIALIZED\s+VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?\{db\}\.(\w+)`)
	alterRe     = regexp.MustCompile(`(?is)^ALTER\s+TABLE\s+\{db\}\.(\w+)\s+(.*)$`)
	dropRe      = regexp.MustCompile(`(?is)^DROP\s+(?:TABLE|VIEW)\s+(?:IF\s+EXISTS\s+)?\{db\}\.(\w+)`)
	systemOneRe = regexp.MustCompile(`(?is)^\s*AS\s+system\.one\s`)
	colKW       = regexp.MustCompile(`(?i)\s+(DEFAULT|MATERIALIZED|ALIAS|CODEC|TTL|COMMENT)\b`)
)

// relations replays the migrations' DDL and returns the tables and views
// they leave, in creation order.
func relations() ([]*relation, error) {
	migs, err := chschema.All()
	if err != nil {
		return nil, err
	}
	var out []*relation
	find := func(name string) int {
		return slices.IndexFunc(out, func(r *relation) bool { return r.name == name })
	}
	for _, m := range migs {
		for _, stmt := range splitWithComments(m.SQL) {
			desc, body := leadingComment(stmt)
			switch {
			case createRe.MatchString(body):
				g := createRe.FindStringSubmatch(body)
				r := &relation{name: g[2], view: !strings.EqualFold(g[1], "TABLE"), desc: desc, from: m.File}
				switch {
				case r.view:
					r.cols = selectColumns(body)
				case systemOneRe.MatchString(body[len(g[0]):]):
					// shards (0018): system.one's one column.
					r.cols = []column{{name: "dummy", typ: "UInt8"}}
				default:
					r.cols = tableColumns(body[len(g[0]):])
				}
				if i := find(r.name); i >= 0 {
					out[i] = r
				} else {
					out = append(out, r)
				}
			case dropRe.MatchString(body):
				if i := find(dropRe.FindStringSubmatch(body)[1]); i >= 0 {
					out = slices.Delete(out, i, i+1)
				}
			case alterRe.MatchString(body):
				g := alterRe.FindStringSubmatch(body)
				if i := find(g[1]); i >= 0 {
					alter(out[i], g[2], m.Portable())
				}
			}
		}
	}
	return out, nil
}

// splitWithComments is chschema.Split keeping each statement's leading
// comment, which is the table's documentation.
func splitWithComments(sql string) []string {
	var out []string
	var pending []string
	for _, line := range strings.Split(sql, "\n") {
		pending = append(pending, line)
		if strings.HasSuffix(strings.TrimSpace(stripComment(line)), ";") {
			out = append(out, strings.Join(pending, "\n"))
			pending = nil
		}
	}
	if s := strings.TrimSpace(strings.Join(pending, "\n")); s != "" {
		out = append(out, s)
	}
	return out
}

func stripComment(line string) string {
	if i := strings.Index(line, "--"); i >= 0 {
		return line[:i]
	}
	return line
}

// leadingComment splits a statement into the comment block just before it
// and the statement without comments.
func leadingComment(stmt string) (string, string) {
	var comment, body []string
	for _, line := range strings.Split(stmt, "\n") {
		t := strings.TrimSpace(line)
		if len(body) == 0 && strings.HasPrefix(t, "--") {
			comment = append(comment, strings.TrimSpace(strings.TrimPrefix(t, "--")))
			continue
		}
		if len(body) == 0 && t == "" {
			comment = nil // a blank line ends a file header
			continue
		}
		if s := strings.TrimSpace(stripComment(line)); s != "" {
			body = append(body, s)
		}
	}
	return strings.Join(strings.Fields(strings.Join(comment, " ")), " "), strings.TrimSuffix(strings.Join(body, "\n"), ";")
}

// topSplit splits s at commas outside parentheses and quotes.
func topSplit(s string) []string {
	var out []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case c == '(' || c == '[':
			depth++
		case c == ')' || c == ']':
			depth--
		case c == ',' && depth == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// tableColumns reads the column list of a CREATE TABLE after its name.
func tableColumns(rest string) []column {
	open := strings.Index(rest, "(")
	if open < 0 {
		return nil
	}
	depth := 0
	end := -1
	for i := open; i < len(rest) && end < 0; i++ {
		switch rest[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				end = i
			}
		}
	}
	if end < 0 {
		return nil
	}
	var cols []column
	for _, item := range topSplit(rest[open+1 : end]) {
		if c, ok := parseColumn(item); ok {
			cols = append(cols, c)
		}
	}
	return cols
}

func parseColumn(item string) (column, bool) {
	item = strings.Join(strings.Fields(item), " ")
	name, typ, ok := strings.Cut(item, " ")
	if !ok || slices.Contains([]string{"INDEX", "PROJECTION", "CONSTRAINT"}, strings.ToUpper(name)) {
		return column{}, false
	}
	if loc := colKW.FindStringIndex(typ); loc != nil {
		switch kw := strings.ToUpper(strings.TrimSpace(typ[loc[0]:])); {
		case strings.HasPrefix(kw, "MATERIALIZED"):
			typ = typ[:loc[0]] + " (materialized)"
		case strings.HasPrefix(kw, "DEFAULT"):
			typ = typ[:loc[0]] + " (computed at insert)"
		default:
			typ = typ[:loc[0]]
		}
	}
	return column{name: strings.Trim(name, "`"), typ: strings.TrimSpace(typ)}, true
}

var afterRe = regexp.MustCompile(`(?i)\s+(AFTER\s+\w+|FIRST)\s*$`)

func alter(r *relation, clauses string, portable bool) {
	for _, c := range topSplit(clauses) {
		c = strings.Join(strings.Fields(c), " ")
		up := strings.ToUpper(c)
		switch {
		case strings.HasPrefix(up, "ADD COLUMN "):
			def := strings.TrimSpace(c[len("ADD COLUMN "):])
			if strings.HasPrefix(strings.ToUpper(def), "IF NOT EXISTS ") {
				def = def[len("IF NOT EXISTS "):]
			}
			after := ""
			if m := afterRe.FindStringSubmatch(def); m != nil {
				def = def[:len(def)-len(m[0])]
				if f := strings.Fields(m[1]); len(f) == 2 {
					after = f[1]
				}
			}
			col, ok := parseColumn(def)
			if !ok || slices.ContainsFunc(r.cols, func(x column) bool { return x.name == col.name }) {
				continue
			}
			if !portable {
				col.modern, col.typ = col.typ, ""
			}
			i := slices.IndexFunc(r.cols, func(x column) bool { return x.name == after })
			if i < 0 {
				r.cols = append(r.cols, col)
			} else {
				r.cols = slices.Insert(r.cols, i+1, col)
			}
		case strings.HasPrefix(up, "MODIFY COLUMN "):
			col, ok := parseColumn(strings.TrimSpace(c[len("MODIFY COLUMN "):]))
			if !ok {
				continue
			}
			for i := range r.cols {
				if r.cols[i].name == col.name {
					if portable {
						r.cols[i].typ = col.typ
					} else {
						r.cols[i].modern = col.typ
					}
				}
			}
		case strings.HasPrefix(up, "DROP COLUMN "):
			name := strings.Fields(c)[len(strings.Fields(c))-1]
			r.cols = slices.DeleteFunc(r.cols, func(x column) bool { return x.name == name })
		}
	}
}

var (
	asRe    = regexp.MustCompile(`(?is)\s+AS\s+(\w+)\s*$`)
	identRe = regexp.MustCompile(`^(?:\w+\.)?(\w+)$`)
	fromRe  = regexp.MustCompile(`(?is)\sFROM\s`)
)

// selectColumns reads the output columns of a view's top-level SELECT.
func selectColumns(stmt string) []column {
	i := strings.Index(strings.ToUpper(stmt), "SELECT")
	if i < 0 {
		return nil
	}
	list := stmt[i+len("SELECT"):]
	// The first FROM outside parentheses ends the list.
	depth := 0
	for j := 0; j < len(list); j++ {
		switch list[j] {
		case '(':
			depth++
		case ')':
			depth--
		}
		if depth == 0 && fromRe.MatchString(list[j:min(j+6, len(list))]) {
			list = list[:j]
			break
		}
	}
	var cols []column
	for _, item := range topSplit(list) {
		item = strings.TrimSpace(item)
		if m := asRe.FindStringSubmatch(item); m != nil {
			cols = append(cols, column{name: m[1], typ: "computed"})
		} else if m := identRe.FindStringSubmatch(item); m != nil {
			cols = append(cols, column{name: m[1], typ: "events." + m[1]})
		}
	}
	return cols
}

// allTypes is the fillers key listing every event type the examples load.
const allTypes = "*"

// fillers maps each events column to the event types whose example
// events (schemas/examples/valid) give it a value.
func fillers() (map[string][]string, error) {
	cols := store.EventColumns()
	// EventRow's fields are the columns in order, Source standing for the
	// three source_* columns.
	flat := func(v reflect.Value) []reflect.Value {
		var out []reflect.Value
		for i := range v.NumField() {
			if f := v.Field(i); f.Type() == reflect.TypeFor[store.Source]() {
				for j := range f.NumField() {
					out = append(out, f.Field(j))
				}
			} else {
				out = append(out, f)
			}
		}
		return out
	}
	if n := len(flat(reflect.ValueOf(store.EventRow{}))); n != len(cols) {
		return nil, fmt.Errorf("store.EventRow has %d values for %d columns", n, len(cols))
	}
	out := map[string][]string{}
	files, err := fs.Glob(schemas.FS, "examples/valid/*.json")
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		raw, err := schemas.FS.ReadFile(f)
		if err != nil {
			return nil, err
		}
		env, err := events.Decode(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		row, err := store.RowFromEvent(env, raw, store.Source{Topic: "audit.events"})
		if err != nil {
			continue // a type the store does not load into events fills nothing
		}
		if !slices.Contains(out[allTypes], env.EventType) {
			out[allTypes] = append(out[allTypes], env.EventType)
		}
		vals := flat(reflect.ValueOf(row))
		for i, c := range cols {
			fv := vals[i]
			if fv.IsZero() || (fv.Type() == reflect.TypeFor[time.Time]() && fv.Interface().(time.Time).Unix() <= 0) {
				continue
			}
			if !slices.Contains(out[c], env.EventType) {
				out[c] = append(out[c], env.EventType)
			}
		}
	}
	return out, nil
}

// emptyValue is what a column holds when the event has no such field.
func emptyValue(typ string) string {
	t := typ
	for _, w := range []string{"LowCardinality(", "Nullable("} {
		if strings.HasPrefix(t, w) {
			if w == "Nullable(" {
				return "`NULL`"
			}
			t = strings.TrimSuffix(strings.TrimPrefix(t, w), ")")
		}
	}
	switch {
	case strings.HasPrefix(t, "String"), strings.HasPrefix(t, "FixedString"):
		return "`''`"
	case strings.HasPrefix(t, "DateTime"):
		return "`1970-01-01 00:00:00` (epoch)"
	case strings.HasPrefix(t, "Array"):
		return "`[]`"
	case strings.HasPrefix(t, "UInt"), strings.HasPrefix(t, "Int"), strings.HasPrefix(t, "Float"), strings.HasPrefix(t, "Bool"):
		return "`0`"
	}
	return "—"
}

// schemaFieldDocs maps field names to their schema descriptions: the
// envelope's first, then each payload's in event type order.
func schemaFieldDocs() map[string]string {
	out := map[string]string{}
	add := func(file string, path ...string) {
		data, err := schemas.FS.ReadFile("v1/" + file)
		if err != nil {
			return
		}
		var doc map[string]any
		if json.Unmarshal(data, &doc) != nil {
			return
		}
		node := doc
		for _, p := range path {
			node, _ = node[p].(map[string]any)
		}
		props, _ := node["properties"].(map[string]any)
		for k, v := range props {
			p, _ := v.(map[string]any)
			if d, ok := p["description"].(string); ok {
				if _, seen := out[k]; !seen {
					out[k] = d + " (" + strings.TrimSuffix(file, ".json") + ")"
				}
			}
		}
	}
	add("envelope.json")
	for _, t := range events.EventTypes {
		add(t+".json", "$defs", "payload")
	}
	return out
}

// TablesReference renders docs/tables.md.
func TablesReference() ([]byte, error) {
	rels, err := relations()
	if err != nil {
		return nil, err
	}
	fill, err := fillers()
	if err != nil {
		return nil, err
	}
	schemaDocs := schemaFieldDocs()
	var b bytes.Buffer
	b.WriteString("# ClickHouse table reference\n\n")
	b.WriteString("<!-- Generated from deploy/clickhouse/migrations, internal/store and schemas/ by `go test ./docs -update`; do not edit. TestTablesReferenceCurrent checks it. -->\n\n")
	b.WriteString("The tables and views the migrations in `deploy/clickhouse/migrations` leave in the `agentaudit` database. One row of `events` is one audit event: the envelope is typed columns and the payload fields compliance filters on are flattened into typed columns; `raw` keeps the canonical event. A payload column an event type does not have holds its type's empty value, so a missing time reads as `1970-01-01 00:00:00`: filter with `> toDateTime(0)`, not `IS NOT NULL`. ")
	b.WriteString("*Filled by* lists the event types whose example events (`schemas/examples/valid`) set the column; *modern type* is the type a server of 23.8 or later gets from the gated migrations.\n\n")
	for _, r := range rels {
		kind := "table"
		if r.view {
			kind = "view"
		}
		fmt.Fprintf(&b, "## `%s` (%s, %s)\n\n", r.name, kind, r.from)
		if r.desc != "" {
			b.WriteString(r.desc + "\n\n")
		}
		if r.view {
			b.WriteString("| column | from | meaning |\n|---|---|---|\n")
			for _, c := range r.cols {
				fmt.Fprintf(&b, "| `%s` | %s | %s |\n", c.name, c.typ, cell(columnMeaning(r.name, c.name, schemaDocs)))
			}
			b.WriteString("\n")
			continue
		}
		b.WriteString("| column | type | modern type | empty value | filled by | meaning |\n|---|---|---|---|---|---|\n")
		for _, c := range r.cols {
			by := "—"
			if r.name == "events" {
				by = fillersCell(fill[c.name], len(fill[allTypes]))
			}
			typ := c.typ
			if typ == "" {
				typ = "(modern servers only)"
			}
			empty := emptyValue(strings.TrimSuffix(c.typ+c.modern, " (materialized)"))
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s |\n", c.name, cell(typ), cell(c.modern), empty, by, cell(columnMeaning(r.name, c.name, schemaDocs)))
		}
		b.WriteString("\n")
	}
	return b.Bytes(), nil
}

func fillersCell(types []string, all int) string {
	if len(types) == 0 {
		return "—"
	}
	if len(types) == all {
		return "every event"
	}
	slices.Sort(types)
	return strings.Join(types, ", ")
}

func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", " ")
}

// columnMeaning is the documented meaning of a column: columnDocs for the
// table, then for any table, then the schema field of the same name.
func columnMeaning(table, col string, schemaDocs map[string]string) string {
	if d, ok := columnDocs[table+"."+col]; ok {
		return d
	}
	if d, ok := columnDocs[col]; ok {
		return d
	}
	return schemaDocs[col]
}
