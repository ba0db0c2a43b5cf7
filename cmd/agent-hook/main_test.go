package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/hook"
)

// fakeRunner listens on a Unix socket and does to each hook call what
// serve says.
func fakeRunner(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "hook.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); serve(c) }()
		}
	}()
	return sock
}

func readReq(c net.Conn) (hook.Request, error) {
	var req hook.Request
	var hdr [4]byte
	r := bufio.NewReader(c)
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return req, err
	}
	b := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(r, b); err != nil {
		return req, err
	}
	return req, json.Unmarshal(b, &req)
}

func writeFrame(c net.Conn, b []byte) {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	c.Write(append(hdr[:], b...))
}

// TestHookFailsClosed: every way the runner can fail to answer ends in
// exit 2 with the reason on stderr, which both agents read as "do not run
// the tool"; only a Stop hook fails by letting the agent stop (exit 0).
func TestHookFailsClosed(t *testing.T) {
	answer := func(resp hook.Response) func(net.Conn) {
		return func(c net.Conn) {
			if _, err := readReq(c); err != nil {
				return
			}
			b, _ := json.Marshal(resp)
			writeFrame(c, b)
		}
	}
	cases := []struct {
		name       string
		socket     string
		serve      func(net.Conn)
		event      string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "socket missing", socket: "/nonexistent/hook.sock", wantCode: 2, wantStderr: "policy check failed: hook: connect to the runner"},
		{name: "time-out", serve: func(c net.Conn) { readReq(c); time.Sleep(5 * time.Second) }, wantCode: 2,
			wantStderr: "context deadline exceeded"},
		{name: "runner gone", serve: func(c net.Conn) { readReq(c) }, wantCode: 2, wantStderr: "no answer from the runner: EOF"},
		{name: "runner gone before reading", serve: func(c net.Conn) {}, wantCode: 2, wantStderr: "policy check failed"},
		{name: "malformed answer", serve: func(c net.Conn) { readReq(c); writeFrame(c, []byte("not json")) }, wantCode: 2,
			wantStderr: "bad frame"},
		{name: "oversized answer", serve: func(c net.Conn) { readReq(c); writeFrame(c, nil); c.Write(bytes.Repeat([]byte{0xff}, 4)) },
			wantCode: 2, wantStderr: "bad frame"},
		{name: "bad exit code", serve: answer(hook.Response{ExitCode: 300}), wantCode: 2, wantStderr: "exit code 300"},
		{name: "deny", serve: answer(hook.Response{ExitCode: 2, Stderr: "agentaudit denied this tool call (denied_by_rule)\n"}),
			wantCode: 2, wantStderr: "agentaudit denied this tool call (denied_by_rule)\n"},
		{name: "allow", serve: answer(hook.Response{Stdout: `{"hookSpecificOutput":{}}` + "\n"}), wantStdout: `{"hookSpecificOutput":{}}` + "\n"},
		{name: "stop: runner gone lets the agent stop", event: "Stop", socket: "/nonexistent/hook.sock", wantCode: 0,
			wantStderr: "the agent stops"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sock := tc.socket
			if sock == "" {
				sock = fakeRunner(t, tc.serve)
			}
			ev := tc.event
			if ev == "" {
				ev = "PreToolUse"
			}
			var stdout, stderr bytes.Buffer
			code := run([]string{"hook", "--agent", "claude", "--event", ev, "--socket", sock, "--timeout", "300ms"},
				strings.NewReader(`{"tool_name":"Bash","tool_input":{"command":"ls"}}`), &stdout, &stderr)
			if code != tc.wantCode || stdout.String() != tc.wantStdout || !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("exit %d stdout %q stderr %q; want exit %d stdout %q stderr containing %q",
					code, stdout.String(), stderr.String(), tc.wantCode, tc.wantStdout, tc.wantStderr)
			}
		})
	}
}

// TestHookForwardsInput: the hook's stdin reaches the runner unchanged,
// with the agent and the event.
func TestHookForwardsInput(t *testing.T) {
	got := make(chan hook.Request, 1)
	sock := fakeRunner(t, func(c net.Conn) {
		req, _ := readReq(c)
		got <- req
		b, _ := json.Marshal(hook.Response{})
		writeFrame(c, b)
	})
	in := `{"session_id":"s1","tool_name":"Bash","tool_use_id":"toolu_1","tool_input":{"command":"ls"}}`
	var stdout, stderr bytes.Buffer
	if code := run([]string{"hook", "--agent", "codex", "--event", "PreToolUse", "--socket", sock}, strings.NewReader(in), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	req := <-got
	if req.Kind != hook.KindHook || req.Agent != "codex" || req.Event != "PreToolUse" || string(req.Input) != in {
		t.Errorf("request %+v", req)
	}
}
