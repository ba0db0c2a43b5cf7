package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// ingest --help lists every subcommand, not the flags of the default one
// under the name "run".
func TestHelpListsSubcommands(t *testing.T) {
	if os.Getenv("INGEST_TEST_MAIN") == "1" {
		os.Args = []string{"ingest", "--help"}
		main()
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestHelpListsSubcommands$")
	cmd.Env = append(os.Environ(), "INGEST_TEST_MAIN=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ingest --help: %v\n%s", err, out)
	}
	for _, want := range []string{"ingest [run]", "ingest migrate", "ingest retention", "ingest bench", "ingest otlp ", "ingest otlp-token"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("--help lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "Usage of run") {
		t.Errorf("--help is still the run flags:\n%s", out)
	}
}
