package query

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/agentaudit/agentaudit/internal/store"
)

// Errors of the query package. A server error is a *ServerError.
var (
	// ErrConfig: a Config field is missing or malformed.
	ErrConfig = errors.New("query: bad config")
	// ErrWriteStatement: the statement is not a read (reason in the message).
	ErrWriteStatement = errors.New("query: only read statements are allowed")
	// ErrParam: a --param is malformed or its value does not fit its type.
	ErrParam = errors.New("query: bad parameter")
	// ErrTime: a time is neither RFC 3339 nor a relative duration.
	ErrTime = errors.New("query: bad time")
	// ErrUnknownReport: no report of that name in reports/.
	ErrUnknownReport = errors.New("query: unknown report")
	// ErrReport: a report file's header is malformed.
	ErrReport = errors.New("query: bad report definition")
	// ErrFindings: a findings report returned rows and the caller asked to
	// fail on findings.
	ErrFindings = errors.New("query: report has findings")
	// ErrChainBroken: verify found at least one gap, edit or duplicate.
	ErrChainBroken = errors.New("query: hash chain broken")
	// ErrTimeout: the query ran longer than its time-out and was killed.
	ErrTimeout = errors.New("query: time-out")
	// ErrNotFound: the session has no events.
	ErrNotFound = errors.New("query: not found")
	// ErrFormat: unknown output format.
	ErrFormat = errors.New("query: unknown format")
)

// ServerError is a ClickHouse exception, shortened for people: the code,
// the first line of the message, without the stack
// trace and the "DB::Exception:" prefixes.
type ServerError struct {
	Code    int32
	Message string
	Err     error
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("ClickHouse error %d: %s", e.Code, e.Message)
}

func (e *ServerError) Unwrap() error { return e.Err }

// serverError wraps err as a *ServerError when it carries a ClickHouse
// code, and returns it unchanged otherwise.
func serverError(err error) error {
	code, ok := store.ErrorCode(err)
	if !ok {
		return err
	}
	var ex *clickhouse.Exception
	errors.As(err, &ex)
	msg := ex.Message
	if i := strings.IndexAny(msg, "\n"); i >= 0 {
		msg = msg[:i]
	}
	for _, p := range []string{"DB::Exception: ", "Received from "} {
		for strings.HasPrefix(msg, p) {
			msg = strings.TrimPrefix(msg, p)
		}
	}
	msg = strings.TrimSpace(strings.ReplaceAll(msg, "DB::Exception: ", ""))
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return &ServerError{Code: code, Message: msg, Err: err}
}
