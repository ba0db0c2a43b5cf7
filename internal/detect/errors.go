package detect

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Errors of loading and running rules.
var (
	// ErrInvalidRule: a rule file does not load. Every *LoadError is one.
	ErrInvalidRule = errors.New("detect: invalid rule")
	// ErrSnapshot: a snapshot cannot be restored.
	ErrSnapshot = errors.New("detect: bad snapshot")
	// ErrQuery: a SQL rule's query failed or returned an unusable row.
	ErrQuery = errors.New("detect: SQL rule query failed")
	// ErrNoSink: Process was called on an engine built without WithSink.
	ErrNoSink = errors.New("detect: no alert sink")
)

// LoadError says where a rule file is wrong and why.
type LoadError struct {
	File   string
	Line   int
	Reason string
}

func (e *LoadError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Reason)
}

// Unwrap lets errors.Is match ErrInvalidRule.
func (e *LoadError) Unwrap() error { return ErrInvalidRule }

// LoadErrors is every error found while loading a rule directory, in file
// and line order; loading goes on after the first so an engineer sees all.
type LoadErrors []*LoadError

func (es LoadErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.Is and errors.As reach each *LoadError.
func (es LoadErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func (es LoadErrors) sorted() LoadErrors {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].File != es[j].File {
			return es[i].File < es[j].File
		}
		return es[i].Line < es[j].Line
	})
	return es
}
