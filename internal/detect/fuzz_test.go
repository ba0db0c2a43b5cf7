package detect

import (
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// FuzzLoadRules feeds arbitrary rule files to the loader: it must return a
// rule set or LoadErrors, never panic or hang, and whatever loads must run
// its own tests. Each run compiles a CEL environment (~20 ms), so bound
// minimisation of the large seeds:
//
//	go test ./internal/detect -run '^$' -fuzz FuzzLoadRules -fuzztime 20s -fuzzminimizetime 2s
func FuzzLoadRules(f *testing.F) {
	files, _ := filepath.Glob("../../rules/*.yaml")
	common, _ := os.ReadFile("../../rules/common.yaml")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(windowRules))
	f.Add([]byte(seqRules))
	f.Add([]byte(dedupRule))
	f.Add([]byte("rules:\n  - id: x\n    on: [\"*\"]\n    match: chain.gap > 0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := fstest.MapFS{"common.yaml": {Data: common}, "fuzz.yaml": {Data: data}}
		rs, err := LoadFS(fsys)
		if err != nil {
			if _, ok := err.(LoadErrors); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		Lint(rs) // runs every test too
	})
}
