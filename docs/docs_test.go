package docs

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/agentaudit/agentaudit/internal/approvals"
	"github.com/agentaudit/agentaudit/internal/policy"
)

var update = flag.Bool("update", false, "rewrite the generated references")

// current compares a generated page with its checked-in file.
func current(t *testing.T, file string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("docs/%s is stale: run go test ./docs -update and commit the result", file)
	}
}

func TestTablesReferenceCurrent(t *testing.T) {
	got, err := TablesReference()
	if err != nil {
		t.Fatal(err)
	}
	current(t, "tables.md", got)
}

// TestTablesReferenceComplete: every column of every table has a meaning
// and a type, and the events table says who fills it.
func TestTablesReferenceComplete(t *testing.T) {
	rels, err := relations()
	if err != nil {
		t.Fatal(err)
	}
	docs := schemaFieldDocs()
	names := map[string]bool{}
	for _, r := range rels {
		names[r.name] = true
		if r.view {
			continue
		}
		if len(r.cols) == 0 {
			t.Errorf("table %s: no columns parsed", r.name)
		}
		for _, c := range r.cols {
			if columnMeaning(r.name, c.name, docs) == "" {
				t.Errorf("%s.%s has no meaning: add it to columnDocs", r.name, c.name)
			}
			if c.typ == "" && c.modern == "" {
				t.Errorf("%s.%s has no type", r.name, c.name)
			}
		}
	}
	for _, want := range []string{"events", "dlq_events", "chain_breaks", "approvals", "tool_calls", "sessions"} {
		if !names[want] {
			t.Errorf("relation %s missing from the reference", want)
		}
	}
	for k := range columnDocs {
		table, col, ok := strings.Cut(k, ".")
		if !ok {
			continue
		}
		found := false
		for _, r := range rels {
			if r.name == table {
				for _, c := range r.cols {
					found = found || c.name == col
				}
			}
		}
		if !found {
			t.Errorf("columnDocs[%s] describes a column that does not exist", k)
		}
	}
}

func TestApproversReference(t *testing.T) {
	current(t, "approvers.md", ApproversReference())
	// Every key the loader's types accept has a meaning, and no meaning
	// outlives its key.
	keys := map[string]bool{}
	for _, typ := range approverTypes {
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			id := typ.Name() + "." + name
			keys[id] = true
			if approverDocs[id] == "" {
				t.Errorf("approvers.yaml key %s has no meaning in approverDocs", id)
			}
			if ft := typ.Field(i).Type; ft.Kind() == reflect.Struct || (ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct) {
				elem := ft
				if elem.Kind() == reflect.Slice {
					elem = elem.Elem()
				}
				if !slices.Contains(approverTypes, elem) {
					t.Errorf("%s is a %s, which the reference does not document", id, elem.Name())
				}
			}
		}
	}
	for id := range approverDocs {
		if !keys[id] {
			t.Errorf("approverDocs[%s] describes a key approvals.Config does not have", id)
		}
	}
	if _, err := approvals.ParseConfig([]byte(approversExample)); err != nil {
		t.Errorf("the reference's example does not load: %v", err)
	}
	// The loader is strict: a misspelt key is refused.
	if _, err := approvals.ParseConfig([]byte(strings.Replace(approversExample, "may_answer", "may_answr", 1))); err == nil {
		t.Error("approvals.ParseConfig accepted an unknown key; the reference's promise is wrong")
	}
}

// TestPolicyReference checks policySections against internal/policy's
// loader: each documented key is accepted where the reference puts it, a
// misspelling of it is refused, and every key the loader's source handles
// is documented.
func TestPolicyReference(t *testing.T) {
	current(t, "policy.md", PolicyReference())
	// probe builds a policy using key in section i.
	probe := func(i int, key string) string {
		switch i {
		case 0:
			return "id: p\n" + key + ": x\n"
		case 1:
			return "id: p\nknown_safe:\n  - {" + key + ": x}\n"
		case 2:
			return "id: p\nrules:\n  - {" + key + ": x}\n"
		default:
			return "id: p\nrules:\n  - id: r\n    decision: allow\n    justification: j\n    match:\n      - {" + key + ": x}\n"
		}
	}
	documented := map[string]bool{}
	for i, s := range policySections {
		for _, k := range s.keys {
			documented[k.key] = true
			_, err := policy.Parse("p.yaml", []byte(probe(i, k.key)))
			if err != nil && strings.Contains(err.Error(), fmt.Sprintf("unknown key %q", k.key)) {
				t.Errorf("%s: key %s is documented but the loader refuses it: %v", s.title, k.key, err)
			}
			_, err = policy.Parse("p.yaml", []byte(probe(i, k.key+"_x")))
			if err == nil || !strings.Contains(err.Error(), "unknown key") {
				t.Errorf("%s: misspelt key %s_x was not refused as unknown: %v", s.title, k.key, err)
			}
		}
	}
	src, err := os.ReadFile("../internal/policy/load.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`case "([a-z_]+)":`).FindAllStringSubmatch(string(src), -1) {
		if k := m[1]; k != "true" && k != "false" && !documented[k] {
			t.Errorf("internal/policy/load.go handles key %q, which docs/files.go does not document", k)
		}
	}
}
