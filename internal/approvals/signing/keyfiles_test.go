package signing

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
)

func TestWriteKeyFilesRotation(t *testing.T) {
	dir := t.TempDir()
	signerPath, setPath, err := WriteKeyFiles(dir, "k-2026-05")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(signerPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("signer.pem mode %v: %v", fi.Mode(), err)
	}
	if _, _, err := WriteKeyFiles(dir, "k-2026-06"); err == nil {
		t.Fatal("overwrote an existing signer.pem")
	}
	// Rotation: the old key moves away; the new set keeps both keys.
	if err := os.Rename(signerPath, filepath.Join(dir, "old-signer.pem")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := WriteKeyFiles(dir, "k-2026-06"); err != nil {
		t.Fatal(err)
	}
	old, err := LoadSigner(filepath.Join(dir, "old-signer.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ks, err := LoadKeySet(setPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(ks.Keys()); got != 2 {
		t.Fatalf("key set has %d keys, want 2", got)
	}
	// A decision signed with the old key still verifies with the set.
	req := requestEnv(t, "1001", func(p *events.ApprovalRequested) { p.ExpiresAt = events.At(time.Now().Add(time.Hour)) })
	ref := refOf(t, req)
	env := signed(t, old, ref, "2001", approve("alice", events.ScopeOnce, time.Now()))
	if err := ks.Verify(env, ref); err != nil {
		t.Errorf("old key's decision: %v", err)
	}
	if _, _, err := WriteKeyFiles(t.TempDir(), "bad id!"); err == nil {
		t.Error("accepted a bad key id")
	}
}
