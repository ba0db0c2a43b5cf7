package supervisor

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// frameLog is what the tracer wrote, one write at a time.
type frameLog struct {
	mu     sync.Mutex
	writes [][]byte
}

func (f *frameLog) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes = append(f.writes, bytes.Clone(p))
	return len(p), nil
}

func (f *frameLog) Read([]byte) (int, error) { return 0, io.EOF }

// frames returns each write's frames as "type:pid" (records "rec:pid").
func (f *frameLog) frames(t *testing.T) [][]string {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var out [][]string
	for _, b := range f.writes {
		w := newWire(struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(b), io.Discard})
		var got []string
		for {
			m, err := w.read()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, frameName(m))
		}
		out = append(out, got)
	}
	return out
}

func frameName(m *Msg) string {
	switch {
	case m.Check != nil && m.Check.Recorded:
		return fmt.Sprintf("rec:%d", m.Check.PID)
	case m.Check != nil:
		return fmt.Sprintf("check:%d", m.Check.PID)
	case m.Exit != nil:
		return fmt.Sprintf("exit:%d", m.Exit.ID)
	}
	return m.Type
}

func recMsg(pid int) *Msg { return &Msg{Type: MsgCheck, Check: &Check{PID: pid, Recorded: true}} }

// The records held back go out before anything else the tracer sends, in
// the order the execs happened, in the same write; alone after
// recordWindow; and at once when maxRecords are held.
func TestRecordsGoFirstAndTogether(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(tr *tracer)
		want [][]string
	}{
		{"before a check", func(tr *tracer) {
			tr.record(recMsg(1))
			tr.record(recMsg(2))
			_ = tr.send(&Msg{Type: MsgCheck, Check: &Check{PID: 3}})
		}, [][]string{{"rec:1", "rec:2", "check:3"}}},
		{"before the call's exit", func(tr *tracer) {
			tr.record(recMsg(1))
			tr.sendExit(&Exit{ID: 7})
			tr.sendExit(&Exit{ID: 8})
		}, [][]string{{"rec:1", "exit:7"}, {"exit:8"}}},
		{"before a notice and held", func(tr *tracer) {
			tr.record(recMsg(1))
			tr.notice(Notice{Kind: NoticeLeftover})
			tr.record(recMsg(2))
			tr.sendHeld(0)
		}, [][]string{{"rec:1", MsgNotice}, {"rec:2", MsgHeld}}},
		{"alone after the window", func(tr *tracer) {
			tr.record(recMsg(1))
			tr.record(recMsg(2))
			time.Sleep(10 * recordWindow)
			tr.sendExit(&Exit{ID: 7})
		}, [][]string{{"rec:1", "rec:2"}, {"exit:7"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fl := &frameLog{}
			tr := newTracer(newWire(fl), &Welcome{}, slog.New(slog.DiscardHandler))
			tc.do(tr)
			if diff := cmp.Diff(tc.want, fl.frames(t)); diff != "" {
				t.Errorf("writes (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("at most maxRecords held", func(t *testing.T) {
		fl := &frameLog{}
		tr := newTracer(newWire(fl), &Welcome{}, slog.New(slog.DiscardHandler))
		var want []string
		for i := range maxRecords + 1 {
			tr.record(recMsg(i))
			want = append(want, fmt.Sprintf("rec:%d", i))
		}
		tr.sendExit(&Exit{ID: 7})
		got := fl.frames(t)
		if diff := cmp.Diff([][]string{want[:maxRecords], {want[maxRecords], "exit:7"}}, got); diff != "" {
			t.Errorf("writes (-want +got):\n%s", diff)
		}
	})
}

// Through a real supervisor: every exec of a call that ran on a reused
// verdict reaches the runner, in order, before the call's exit does.
func TestRecordsOfACallArriveBeforeItsExit(t *testing.T) {
	h := startSupervisor(t, func(c *Check) Verdict { return Verdict{Allow: true, Reuse: true} })
	const n = 2*maxRecords + 10
	for range 3 {
		before := len(h.checks.all())
		r := run(t, h, Request{Argv: []string{"bash", "-c", fmt.Sprintf("for i in $(seq %d); do /bin/true a; /bin/true b; done", n/2)}})
		if r.ExitCode != 0 {
			t.Fatalf("exit %+v %s", r.Exit, r.Stderr)
		}
		var got []string
		for _, c := range h.checks.all()[before:] {
			if filepath.Base(c.Argv[0]) == "true" {
				got = append(got, strings.Join(c.Argv[1:], " "))
			}
		}
		want := strings.Split(strings.Repeat("a b ", n/2), " ")
		want = want[:len(want)-1]
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("execs recorded by the exit (-want +got):\n%s", diff)
		}
	}
}
