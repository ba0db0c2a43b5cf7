// Package chdbpath prepares a test process for chDB: library path and signal handlers.
//
// chdb-go loads libchdb.so in its package init and panics when it is not
// found. Go initialises packages in import-path order among those whose
// imports are ready; this package (github.com/agentaudit/...) imports only
// packages that chdb-go needs as well, so it is ready when chdb-go is and
// sorts before it (github.com/chdb-io/...). Importing it therefore sets
// CHDB_LIB_PATH from .testenv/env before chdb-go's init runs, and turns a
// missing library into a message naming testenv/up instead of a panic.
// (It must not import internal/testenv, which pulls in package testing and
// would be initialised too late.)
package chdbpath

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Var is the variable chdb-go reads the library path from.
const Var = "CHDB_LIB_PATH"

const fetch = "testenv/up (chdb_up in testenv/lib/chdb.sh)"

func init() {
	path := os.Getenv(Var)
	if path == "" {
		path = fromEnvFile()
	}
	if path == "" {
		fmt.Fprintf(os.Stderr, "chdbpath: %s is not set and .testenv/env has none; fetch libchdb.so with %s\n", Var, fetch)
		os.Exit(2)
	}
	if _, err := os.Stat(path); err != nil {
		fmt.Fprintf(os.Stderr, "chdbpath: %v; fetch libchdb.so with %s\n", err, fetch)
		os.Exit(2)
	}
	os.Setenv(Var, path)
}

// fromEnvFile reads CHDB_LIB_PATH from .testenv/env in the nearest parent
// holding go.mod, or falls back to where chdb_up installs the library.
func fromEnvFile() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
	if b, err := os.ReadFile(filepath.Join(dir, ".testenv", "env")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimPrefix(strings.TrimSpace(line), "export ")
			if v, ok := strings.CutPrefix(line, Var+"="); ok {
				return strings.Trim(v, `"'`)
			}
		}
	}
	// testenv/up may not export it yet; chdb_up's install location is fixed.
	lib := filepath.Join(dir, ".testenv", "chdb", "node_modules", "@chdb", "lib-linux-x64-gnu", "libchdb.so")
	if _, err := os.Stat(lib); err == nil {
		return lib
	}
	return ""
}
