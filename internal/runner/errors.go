package runner

import (
	"errors"
	"fmt"
	"strings"

	"github.com/agentaudit/agentaudit/internal/events"
)

// Errors of the runner. A refused tool call is a *DeniedError, which
// unwraps to ErrDenied.
var (
	// ErrDenied: the tool call did not run; DeniedError says why.
	ErrDenied = errors.New("runner: tool call denied")
	// ErrConfig: the runner's configuration is invalid; the message names the field.
	ErrConfig = errors.New("runner: invalid configuration")
	// ErrSessionClosed: the session has ended and takes no more calls.
	ErrSessionClosed = errors.New("runner: session closed")
	// ErrUnknownTool: the tool name is not one the runner serves.
	ErrUnknownTool = errors.New("runner: unknown tool")
)

// DeniedError is a tool call the runner refused. Reason is the final
// reason code; Asked is the policy's reason when the refusal came from the
// approval path (needs_approval → approval_denied).
type DeniedError struct {
	Reason events.ReasonCode
	Asked  events.ReasonCode
	RuleID string
	// Detail is one human sentence: why, in words.
	Detail string
}

func (e *DeniedError) Error() string {
	var b strings.Builder
	b.WriteString("denied (")
	if e.Asked != "" && e.Asked != e.Reason {
		b.WriteString(string(e.Asked))
		b.WriteString("→")
	}
	b.WriteString(string(e.Reason))
	b.WriteString(")")
	if e.RuleID != "" {
		fmt.Fprintf(&b, " by rule %s", e.RuleID)
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrDenied) hold.
func (e *DeniedError) Unwrap() error { return ErrDenied }

// ReasonOf returns the reason code of a denial, or "" when err is not one.
func ReasonOf(err error) events.ReasonCode {
	var d *DeniedError
	if errors.As(err, &d) {
		return d.Reason
	}
	return ""
}

func deny(reason events.ReasonCode, format string, args ...any) *DeniedError {
	return &DeniedError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}
