package signing

import (
	"errors"
	"fmt"
	"testing"
)

// errOther is a code declared outside this package's list, as the approvals
// service declares its own. Package level: a code is declared once per process.
var errOther = NewSentinel("test_other", "other: refused")

// TestSentinels: a refusal matches its code's sentinel through wrapping,
// whoever declared the code, and a code is declared once.
func TestSentinels(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		code     Code
		sentinel error
		text     string
	}{
		{"this package's code", Fail(CodeReplay, "approval %s", "1"), CodeReplay, ErrReplay, "approvals: decision already used: approval 1"},
		{"another package's code", Fail("test_other", "x"), "test_other", errOther, "other: refused: x"},
		{"wrapped", fmt.Errorf("runner: %w", Fail(CodeExpired, "")), CodeExpired, ErrExpired, "runner: approvals: approval expired"},
		{"not a refusal", errors.New("plain"), "", nil, "plain"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := CodeOf(tc.err); got != tc.code {
				t.Errorf("CodeOf = %q, want %q", got, tc.code)
			}
			if tc.sentinel != nil && !errors.Is(tc.err, tc.sentinel) {
				t.Errorf("errors.Is(%v, %v) = false", tc.err, tc.sentinel)
			}
			if tc.err.Error() != tc.text {
				t.Errorf("Error() = %q, want %q", tc.err.Error(), tc.text)
			}
		})
	}
	defer func() {
		if recover() == nil {
			t.Errorf("declaring %s twice did not panic", CodeReplay)
		}
	}()
	NewSentinel(CodeReplay, "again")
}
