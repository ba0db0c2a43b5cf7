package envfile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "env")
	body := "# written by testenv/up\nexport KAFKA_BROKERS=127.0.0.1:9092\n\nexport QUOTED=\"a b\"\nPLAIN='x'\nnot a pair\nexport OVERRIDDEN=file\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OVERRIDDEN", "process")
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"KAFKA_BROKERS": "127.0.0.1:9092", "QUOTED": "a b", "PLAIN": "x", "OVERRIDDEN": "process"}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
}
