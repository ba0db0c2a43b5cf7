package otlp

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"unicode/utf8"

	"github.com/agentaudit/agentaudit/internal/events"
)

// TextMode is how a tenant keeps the text agents log: prompts, responses,
// tool arguments and output.
type TextMode string

// Text modes. Token counts and costs are kept under every mode.
const (
	// TextStore keeps the text with obvious secrets redacted (Redact), cut
	// to events.MaxAgentText bytes, with the original's sha256 and length.
	TextStore TextMode = events.TextStore
	// TextHash keeps the sha256 and length only. The default.
	TextHash TextMode = events.TextHash
	// TextDrop keeps the length only; tool commands are dropped too.
	TextDrop TextMode = events.TextDrop
)

// ParseTextMode reads store, hash or drop; "" is the default, hash.
func ParseTextMode(s string) (TextMode, error) {
	switch TextMode(s) {
	case "":
		return TextHash, nil
	case TextStore, TextHash, TextDrop:
		return TextMode(s), nil
	}
	return "", fmt.Errorf("text mode %q: want store, hash or drop", s)
}

// keepText applies mode m to text s.
func keepText(m TextMode, s string) *events.AgentText {
	t := &events.AgentText{Mode: string(m), Length: uint64(len(s))}
	if m == TextDrop {
		return t
	}
	sum := sha256.Sum256([]byte(s))
	t.SHA256 = hex.EncodeToString(sum[:])
	if m != TextStore {
		return t
	}
	red, n := Redact(s)
	t.Redactions = uint64(n)
	t.Text, t.Truncated = boundUTF8(red, events.MaxAgentText)
	return t
}

// boundUTF8 cuts s to at most n bytes of valid UTF-8 (invalid sequences
// replaced) and says whether it cut.
func boundUTF8(s string, n int) (string, bool) {
	if !utf8.ValidString(s) {
		s = toValidUTF8(s)
	}
	if len(s) <= n {
		return s, false
	}
	s = s[:n]
	for len(s) > 0 {
		r, size := utf8.DecodeLastRuneInString(s)
		if r != utf8.RuneError || size > 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s, true
}

func toValidUTF8(s string) string {
	b := make([]byte, 0, len(s))
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && size == 1 {
			b = utf8.AppendRune(b, utf8.RuneError)
		} else {
			b = append(b, s[:size]...)
		}
		s = s[size:]
	}
	return string(b)
}
