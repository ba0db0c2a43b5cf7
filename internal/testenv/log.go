package testenv

import (
	"log/slog"
	"strings"
	"testing"
)

// Logger returns a logger that writes text records at level and above to
// t's log, so a failing test shows what the code under test said and a
// passing one stays quiet.
func Logger(t testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(Writer{t}, &slog.HandlerOptions{Level: level}))
}

// Writer sends each write to t's log as one entry, without its trailing
// newline: for a JSON handler, a client library's own logger, or a child
// process's output.
type Writer struct{ T testing.TB }

func (w Writer) Write(p []byte) (int, error) {
	w.T.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
