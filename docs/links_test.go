package docs

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// mdRef is a Markdown file a document names: a link target or a path in
// the text.
var mdRef = regexp.MustCompile(`[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.md\b`)

// TestDocsCiteExistingFiles: every .md file a document of the repository
// names exists, relative to the document or to the repository root, so a
// reader is never sent to a page that is not there (deploy/clickhouse's
// README once cited a DESIGN.md the repository does not have). Files the
// tools write under .testenv/ are not in the repository and are exempt.
func TestDocsCiteExistingFiles(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != root && (strings.HasPrefix(n, ".") || n == "node_modules" || n == "bin" || n == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".md") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		for i, line := range strings.Split(string(src), "\n") {
			for _, ref := range mdRef.FindAllString(line, -1) {
				if strings.HasPrefix(ref, ".testenv/") {
					continue
				}
				if exists(filepath.Join(filepath.Dir(p), ref)) || exists(filepath.Join(root, ref)) {
					continue
				}
				t.Errorf("%s:%d names %s, which the repository does not have", rel, i+1, ref)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
