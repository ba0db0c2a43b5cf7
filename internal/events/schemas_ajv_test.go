package events

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSchemasAjv runs the independent validator, ajv (draft 2020-12 with
// ajv-formats), over every example: valid ones must pass, invalid ones fail
// at the pointer and keyword of the manifest, and the examples' hash chains
// recompute in JavaScript from the definition alone.
func TestSchemasAjv(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, "schemas", "check", "validate.mjs")
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is not installed (apt-get install nodejs npm), then: npm ci --prefix schemas/check")
	}
	if _, err := os.Stat(filepath.Join(root, "schemas", "check", "node_modules", "ajv", "package.json")); err != nil {
		t.Fatalf("ajv is not installed; run from the repository root: npm ci --prefix schemas/check")
	}
	out, err := exec.Command("node", script).CombinedOutput()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, out)
	}
	m := regexp.MustCompile(`(?m)^ajv: (\d+) passed, (\d+) failed$`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no summary in output:\n%s", out)
	}
	valid := readExamples(t, "valid")
	invalid := len(readExamples(t, "invalid"))
	chains := map[ChainKey]bool{}
	for _, b := range valid {
		e, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		chains[e.Key()] = true
	}
	// One line per example, and one per chain it recomputed.
	if want := fmt.Sprint(len(valid) + invalid + len(chains)); m[1] != want || m[2] != "0" {
		t.Fatalf("ajv: %s passed, %s failed; want %s passed:\n%s", m[1], m[2], want, out)
	}
	if n := strings.Count(string(out), "\nok   invalid/"); n != invalid {
		t.Errorf("%d invalid examples failed as expected, want %d", n, invalid)
	}
}
