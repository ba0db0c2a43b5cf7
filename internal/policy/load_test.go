package policy

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func TestLoadErrors(t *testing.T) {
	const rule = "rules:\n  - id: r\n    decision: allow\n    justification: j\n"
	tests := []struct {
		name string
		src  string
		want string // the whole error text
		is   error
	}{
		{"unknown top-level key", "id: p\nbogus: 1\n",
			`t.yaml:2:1: unknown key "bogus"`, ErrInvalidPolicy},
		{"missing id", "version: 1\n",
			`t.yaml:1:1: missing id`, ErrInvalidPolicy},
		{"bad approval mode", "id: p\napproval_mode: sometimes\n",
			`t.yaml:2:16: approval_mode "sometimes": want untrusted, on-request or never`, ErrInvalidPolicy},
		{"unknown rule key", "id: p\n" + rule + "    prefx: [git]\n",
			`t.yaml:6:5: unknown key "prefx" in rule`, ErrInvalidPolicy},
		{"bad decision", "id: p\nrules:\n  - id: r\n    decision: maybe\n    justification: j\n",
			`t.yaml:4:15: decision "maybe": want allow, ask or deny`, ErrInvalidPolicy},
		{"missing decision", "id: p\nrules:\n  - id: r\n    justification: j\n",
			`t.yaml:3:5: rule r: missing decision`, ErrInvalidPolicy},
		{"missing justification", "id: p\nrules:\n  - id: r\n    decision: deny\n",
			`t.yaml:3:5: rule r: missing justification`, ErrInvalidPolicy},
		{"unknown reason", "id: p\n" + rule + "    reason: because\n",
			`t.yaml:6:13: reason "because" is not a known reason code`, ErrInvalidPolicy},
		{"bad glob", "id: p\n" + rule + "    paths: [\"src/[abc\"]\n",
			`t.yaml:6:13: glob "src/[abc": syntax error in pattern`, ErrInvalidPolicy},
		{"partial double star", "id: p\nprotected_paths: [\"a**/b\"]\n",
			`t.yaml:2:19: glob "a**/b": ** must be a whole path segment`, ErrInvalidPolicy},
		{"duplicate rule id", "id: p\n" + rule + "  - id: r\n    decision: deny\n    justification: j\n",
			`t.yaml:6:5: rule id "r" is used twice`, ErrInvalidPolicy},
		{"repeated key", "id: p\nid: q\n",
			`t.yaml:2:1: key "id" repeated`, ErrInvalidPolicy},
		{"bool wanted", "id: p\ndefault_known_safe: maybe\n",
			`t.yaml:2:21: want true or false`, ErrInvalidPolicy},
		{"alias", "id: &a p\nversion: *a\n",
			`t.yaml:2:10: aliases are not supported`, ErrInvalidPolicy},
		{"yaml syntax", "id: p\nrules: [\n",
			`t.yaml:2: did not find expected node content`, ErrInvalidPolicy},
		{"two documents", "id: p\n---\nid: q\n",
			`t.yaml:2: more than one YAML document`, ErrInvalidPolicy},
		{"empty", "",
			`t.yaml: empty policy`, ErrInvalidPolicy},
		{"not a mapping", "- a\n",
			`t.yaml:1:1: policy: want a mapping`, ErrInvalidPolicy},
		{"bad example shape", "id: p\n" + rule + "    match: [{tool: x, nope: 1}]\n",
			`t.yaml:6:23: unknown key "nope" in example`, ErrInvalidPolicy},
		{"failing match example", "id: p\nrules:\n  - id: push\n    prefix: [git, push]\n    decision: ask\n    justification: j\n    match: [\"git pull\"]\n",
			`t.yaml:7:13: rule push: example git pull does not match it: decided by no rule (deny default_deny)`, ErrExampleFailed},
		{"failing not_match example", "id: p\nrules:\n  - id: push\n    prefix: [git]\n    decision: ask\n    justification: j\n    not_match:\n      - [git, pull]\n",
			`t.yaml:8:9: rule push: example git pull matches it: decided by rule push (ask needs_approval)`, ErrExampleFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("t.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse succeeded (policy %s), want error %q", p.ID(), tt.want)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error mismatch (-want +got):\n%s", diff)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			var le *LoadError
			if !errors.As(err, &le) || le.File != "t.yaml" {
				t.Errorf("error %v is not a *LoadError for t.yaml", err)
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	p, err := Load(filepath.Join("testdata", "check_ok.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got := struct {
		ID, Version string
		Mode        Mode
		Examples    int
	}{p.ID(), p.Version(), p.Mode(), len(p.Examples())}
	want := struct {
		ID, Version string
		Mode        Mode
		Examples    int
	}{"team", "3", OnRequest, 5}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
	if _, err := Load(filepath.Join("testdata", "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) error = %v, want os.ErrNotExist", err)
	}
	if _, err := Parse("t.yaml", []byte("id: p\n"), WithApprovalMode("sometimes")); !errors.Is(err, ErrInvalidPolicy) {
		t.Errorf("bad WithApprovalMode error = %v, want ErrInvalidPolicy", err)
	}
}

func TestDefaultProtectedCanBeDisabled(t *testing.T) {
	src := "id: p\napproval_mode: on-request\ndefault_protected_paths: false\ndefault_known_safe: false\nrules:\n  - id: w\n    tool: write_file\n    decision: allow\n    justification: j\n"
	p, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	got := []verdict{
		short(p.Evaluate(ToolCall{Tool: "write_file", Paths: []string{".env"}, Write: true})),
		short(p.Evaluate(sh("ls"))),
	}
	want := []verdict{{Allow, ReasonAllowlisted, "w"}, {Deny, ReasonDefaultDeny, ""}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}

func TestCheckFileGolden(t *testing.T) {
	tests := []struct {
		file    string
		wantErr bool
	}{
		{"check_ok.yaml", false},
		{"check_fail.yaml", true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			var buf bytes.Buffer
			err := CheckFile(&buf, filepath.Join("testdata", tt.file))
			if (err != nil) != tt.wantErr {
				t.Fatalf("CheckFile error = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr && !errors.Is(err, ErrExampleFailed) {
				t.Errorf("CheckFile error = %v, want ErrExampleFailed", err)
			}
			golden := filepath.Join("testdata", strings.TrimSuffix(tt.file, ".yaml")+".golden")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run CheckFileGolden -update)", err)
			}
			if diff := cmp.Diff(string(want), buf.String()); diff != "" {
				t.Errorf("CheckFile output mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDefaultPolicyExamples(t *testing.T) {
	p := mustDefault(t)
	if len(p.Examples()) < 60 {
		t.Errorf("default policy has %d examples, want at least 60", len(p.Examples()))
	}
	for _, ex := range p.Examples() {
		if !ex.OK {
			t.Errorf("%s:%d: rule %s example %s: want %s, got %s", DefaultFile, ex.Line, ex.RuleID, ex.Example, ex.Want, ex.Got)
		}
	}
}
