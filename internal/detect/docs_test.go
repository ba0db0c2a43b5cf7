package detect

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestRuleReferenceCurrent regenerates the rule reference and compares it
// with docs/rules.md; -update rewrites the file.
func TestRuleReferenceCurrent(t *testing.T) {
	const file = "../../docs/rules.md"
	got := RuleReference()
	if *updateGolden {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run `go run ./cmd/detect docs > docs/rules.md` (or this test with -update)", file)
	}
}

// TestRuleReferenceComplete: every key the loader accepts and every helper
// function has a description, and no description outlives its key.
func TestRuleReferenceComplete(t *testing.T) {
	used := map[string]bool{}
	for _, s := range docSections {
		for _, k := range yamlKeys(s.typ) {
			id := s.key + "." + k.name
			used[id] = true
			if keyDocs[id] == "" {
				t.Errorf("key %s has no description in keyDocs", id)
			}
		}
	}
	for id := range keyDocs {
		if !used[id] {
			t.Errorf("keyDocs[%s] describes a key the loader does not have", id)
		}
	}
	for _, f := range functionNames {
		if functionDocs[f] == "" {
			t.Errorf("function %s has no description in functionDocs", f)
		}
	}
	if len(functionDocs) != len(functionNames) {
		t.Errorf("functionDocs has %d entries for %d functions", len(functionDocs), len(functionNames))
	}
	ref := string(RuleReference())
	for _, want := range []string{"`payload` of `process.exec`", "`payload.argv`", "`event.actor.id`", "`chain.gap`", "`in_cidr(string, list(string)) → bool`"} {
		if !strings.Contains(ref, want) {
			t.Errorf("reference lacks %s", want)
		}
	}
	// Every field row has a meaning (from the schemas or chainDocs).
	for _, line := range strings.Split(ref, "\n") {
		if strings.HasPrefix(line, "| `") && strings.HasSuffix(line, "|  |") {
			t.Errorf("no meaning: %s", line)
		}
	}
}
