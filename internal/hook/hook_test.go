package hook

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func listen(t *testing.T) (*Server, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "hooks")
	s, err := Listen(dir, -1, -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.Serve(HandlerFunc(func(_ context.Context, req *Request) Response {
		return Response{Stdout: req.Agent + " " + req.Event + " " + string(req.Input)}
	}))
	return s, filepath.Join(dir, SocketName)
}

// TestPeerCheck: until the sandbox is named nobody is served; then only
// processes in its PID namespace are (here: the test's own).
func TestPeerCheck(t *testing.T) {
	s, sock := listen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := Call(ctx, sock, Request{Agent: "claude", Event: "PreToolUse", Input: []byte(`{}`)}); err == nil {
		t.Fatal("a call before SetPeer was answered")
	}
	if s.Refused() != 1 {
		t.Errorf("refused %d, want 1", s.Refused())
	}
	if err := s.SetPeer(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	resp, err := Call(ctx, sock, Request{Agent: "claude", Event: "PreToolUse", Input: []byte(`{"a":1}`)})
	if err != nil || resp.Stdout != `claude PreToolUse {"a":1}` || resp.ExitCode != 0 {
		t.Fatalf("call: %+v %v", resp, err)
	}
	if err := s.SetPeer(1 << 30); err == nil {
		t.Error("SetPeer of a pid that does not exist succeeded")
	}
}

// TestAttach hands the descriptors out once.
func TestAttach(t *testing.T) {
	s, sock := listen(t)
	if err := s.SetPeer(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	s.SetStdio([]*os.File{r, w, w}, false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	files, tty, err := Attach(ctx, sock)
	if err != nil || tty || len(files) != 3 {
		t.Fatalf("attach: %v %v %d", err, tty, len(files))
	}
	// The received stdout is the pipe's write end.
	if _, err := io.WriteString(files[1], "through"); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		f.Close()
	}
	w.Close()
	b, _ := io.ReadAll(r)
	if string(b) != "through" {
		t.Errorf("read %q", b)
	}
	if _, _, err := Attach(ctx, sock); err == nil || !strings.Contains(err.Error(), "handed out already") {
		t.Errorf("second attach: %v", err)
	}
}

// TestCancelOnHangup: a hook that goes away cancels the call it made.
func TestCancelOnHangup(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hooks")
	s, err := Listen(dir, -1, -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetPeer(os.Getpid())
	cancelled := make(chan struct{})
	s.Serve(HandlerFunc(func(ctx context.Context, _ *Request) Response {
		<-ctx.Done()
		close(cancelled)
		return Response{}
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := Call(ctx, filepath.Join(dir, SocketName), Request{Input: []byte(`{}`)}); err == nil {
		t.Fatal("answered")
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler was not cancelled when the hook went away")
	}
}

// FuzzFrame: a frame from the other side never panics the reader.
func FuzzFrame(f *testing.F) {
	good, _ := encode(Request{Kind: KindHook, Agent: "codex", Event: "PreToolUse", Input: []byte(`{}`)})
	f.Add(good)
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, '{'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var req Request
		_ = readFrame(bytes.NewReader(b), &req)
	})
}
