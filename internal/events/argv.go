package events

import (
	"strings"
	"unicode/utf8"
)

// Bounds of an audited argv (process.exec, sandbox.violation): the schemas
// allow at most MaxArgvItems entries of at most MaxArgBytes each.
const (
	MaxArgvItems = 256
	MaxArgBytes  = 4096
)

// BoundArgv returns argv as the schemas accept it: invalid UTF-8 replaced
// by U+FFFD (a program's arguments are bytes, an event's are text), at
// most MaxArgvItems entries, each cut to MaxArgBytes bytes without
// splitting a character. truncated says an entry was dropped or cut; a
// replacement alone is not a cut. The result is never nil, because
// process.exec requires the array even when a program got no arguments.
func BoundArgv(argv []string) (out []string, truncated bool) {
	n := min(len(argv), MaxArgvItems)
	truncated = len(argv) > n
	out = make([]string, n)
	for i, a := range argv[:n] {
		if !utf8.ValidString(a) {
			a = strings.ToValidUTF8(a, "\uFFFD")
		}
		if len(a) > MaxArgBytes {
			a = cutUTF8(a, MaxArgBytes)
			truncated = true
		}
		out[i] = a
	}
	return out, truncated
}

// cutUTF8 cuts valid UTF-8 s to at most n bytes at a character boundary.
func cutUTF8(s string, n int) string {
	s = s[:n]
	for len(s) > 0 {
		// U+FFFD itself decodes with size 3; size 1 is a character cut short.
		if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size > 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}
