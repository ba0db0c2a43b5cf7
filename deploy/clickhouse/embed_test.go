package chschema

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"SELECT 1; SELECT 2;", []string{"SELECT 1", "SELECT 2"}},
		{"-- header; with semicolon\nSELECT 'a;b'; -- trailing\n", []string{"SELECT 'a;b'"}},
		{"SELECT /* x; y */ 1", []string{"SELECT /* x; y */ 1"}},
		{"SELECT 'it\\'s;'", []string{"SELECT 'it\\'s;'"}},
		{"-- only a comment\n", nil},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, Split(tt.in)); diff != "" {
			t.Errorf("Split(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestParse(t *testing.T) {
	m, err := Parse("migrations/0007_x.sql", "-- min_version: 23.8\n-- requires: rbac\nCREATE ROLE r;")
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != 7 || m.Name != "x" || m.MinVersion != "23.8" || !cmp.Equal(m.Requires, []string{FeatureRBAC}) || m.Portable() {
		t.Errorf("parsed %+v", m)
	}
	for _, bad := range []struct{ file, sql string }{
		{"migrations/x.sql", "SELECT 1"},
		{"migrations/0001_a.sql", "-- min_version: new\nSELECT 1"},
		{"migrations/0001_a.sql", "-- requires: magic\nSELECT 1"},
		{"migrations/0001_a.sql", "-- nothing\n"},
	} {
		if _, err := Parse(bad.file, bad.sql); !errors.Is(err, ErrMigration) {
			t.Errorf("Parse(%s, %q) = %v, want ErrMigration", bad.file, bad.sql, err)
		}
	}
}

func TestVersionAtLeast(t *testing.T) {
	for _, tt := range []struct {
		v, min string
		want   bool
	}{
		{"18.16.1", "23.8", false}, {"23.8", "23.8", true}, {"23.8.1.1", "23.8", true},
		{"26.5.1.1", "23.8", true}, {"23.7.9", "23.8", false}, {"24.1", "23.8", true},
	} {
		v, _ := ParseVersion(tt.v)
		min, _ := ParseVersion(tt.min)
		if got := v.AtLeast(min); got != tt.want {
			t.Errorf("%s >= %s = %v", tt.v, tt.min, got)
		}
	}
}

func TestEmbeddedMigrations(t *testing.T) {
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range all {
		if m.Version != i+1 {
			t.Errorf("%s: version %d, want %d (no gaps)", m.File, m.Version, i+1)
		}
		for _, s := range m.Statements("audit") {
			if strings.Contains(s, DBPlaceholder) || !strings.Contains(s, "audit.") && !strings.HasPrefix(s, "CREATE ROLE") {
				t.Errorf("%s: statement does not name the database: %.80s", m.File, s)
			}
		}
	}
	if len(Bootstrap("audit")) != 2 {
		t.Errorf("bootstrap has %d statements, want 2", len(Bootstrap("audit")))
	}
}
