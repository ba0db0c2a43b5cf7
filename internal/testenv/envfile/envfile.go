// Package envfile reads the environment file testenv/up writes, for tests
// and for the development tools (the demo) that run against the same
// services. It does not import testing, so binaries may use it.
package envfile

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// Root returns the repository root: the nearest parent of the working
// directory holding go.mod.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Path is where testenv/up writes the file under root.
func Path(root string) string { return filepath.Join(root, ".testenv", "env") }

// Load reads the `export K=V` lines of path. The process environment wins
// where both name a variable with a non-empty value.
func Load(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if ok {
			env[k] = strings.Trim(v, `"'`)
		}
	}
	for k := range env {
		if v := os.Getenv(k); v != "" {
			env[k] = v
		}
	}
	return env, sc.Err()
}
