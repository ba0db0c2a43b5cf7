// Package preview shows an approver what a file write would change: the new content and a unified diff, bounded and with secrets redacted.
//
// Only the runner can read the file a write would replace, so the runner
// builds the preview and puts it in its approval.requested event; the
// approvals service only displays it.
package preview

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/otlp"
)

// Bounds of the work FileWrite does, beside the event's own bounds:
// text past maxPreviewInput is not read at all, and a changed region
// larger than maxDiffCells (lines × lines) is shown as removed and added
// instead of being aligned line by line.
const (
	maxPreviewInput = 256 << 10
	maxDiffCells    = 4 << 20
	diffContext     = 3
)

// CurrentFile reads, for a preview, the file a write would replace: rel
// inside workspace, opened through an os.Root so that a symlink or ".."
// cannot make the runner read (and publish to approvers) a file outside
// the workspace. exists is false when there is no such regular file; at
// most a little more than the preview reads is returned.
func CurrentFile(workspace, rel string) (cur []byte, exists bool) {
	root, err := os.OpenRoot(workspace)
	if err != nil {
		return nil, false
	}
	defer root.Close()
	f, err := root.Open(rel)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, false
	}
	b, err := io.ReadAll(io.LimitReader(f, maxPreviewInput+1))
	if err != nil {
		return nil, false
	}
	return b, true
}

// FileWrite returns what an approver sees of a write of next to
// path: the new content and a unified diff from cur (the file as it is;
// exists false when there is none), both cut to the event's bounds, with
// secrets replaced. Binary content (a NUL byte or invalid UTF-8) is never
// shown, only its length and sha256. The runner calls it when it asks
// about a file write, because only the runner can read the current file.
func FileWrite(path string, cur []byte, exists bool, next []byte) *events.WritePreview {
	sum := sha256.Sum256(next)
	p := &events.WritePreview{
		Path: path, ContentLength: uint64(len(next)), ContentSHA256: hex.EncodeToString(sum[:]),
		NewFile: !exists,
	}
	if isBinary(next) {
		p.Binary = true
		return p
	}
	newText, cutNew := boundedText(next)
	newText, n := otlp.Redact(newText)
	p.Redacted += uint64(n)
	p.Content, p.Truncated = clipBytes(newText, events.MaxPreviewContent)
	p.Truncated = p.Truncated || cutNew
	if exists && isBinary(cur) {
		p.Diff = fmt.Sprintf("Binary file %s replaced by text\n", path)
		return p
	}
	oldText, cutOld := boundedText(cur)
	oldText, n = otlp.Redact(oldText)
	p.Redacted += uint64(n)
	from := "a/" + strings.TrimPrefix(path, "/")
	if !exists {
		from = "/dev/null"
	}
	d := UnifiedDiff(from, "b/"+strings.TrimPrefix(path, "/"), oldText, newText)
	var cutDiff bool
	p.Diff, cutDiff = clipBytes(d, events.MaxPreviewDiff)
	p.Truncated = p.Truncated || cutDiff || cutOld
	return p
}

// isBinary reports whether b is not text a person can read.
func isBinary(b []byte) bool {
	head := b[:min(len(b), 8192)]
	return bytes.IndexByte(head, 0) >= 0 || !utf8.Valid(trimPartialRune(b[:min(len(b), maxPreviewInput)]))
}

// boundedText returns at most maxPreviewInput bytes of b as a string.
func boundedText(b []byte) (string, bool) {
	if len(b) <= maxPreviewInput {
		return string(b), false
	}
	return string(trimPartialRune(b[:maxPreviewInput])), true
}

// trimPartialRune drops a rune cut in half at the end of b.
func trimPartialRune(b []byte) []byte {
	for i := 0; i < utf8.UTFMax && len(b) > 0; i++ {
		r, size := utf8.DecodeLastRune(b)
		if r != utf8.RuneError || size != 1 {
			return b
		}
		b = b[:len(b)-1]
	}
	return b
}

// clipBytes cuts s to at most n bytes on a rune boundary.
func clipBytes(s string, n int) (string, bool) {
	if len(s) <= n {
		return s, false
	}
	return string(trimPartialRune([]byte(s[:n]))), true
}

// UnifiedDiff returns the unified diff (3 lines of context) that turns
// old into new, with the file names from and to; "" when they are equal.
func UnifiedDiff(from, to, old, new string) string {
	if old == new {
		return ""
	}
	a, b := splitLines(old), splitLines(new)
	ops := diffLines(a, b)
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", from, to)
	// Group the edit script into hunks with diffContext lines around.
	for i := 0; i < len(ops); {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		start := max(0, i-diffContext)
		end := i
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run == len(ops) || run-end > 2*diffContext {
				end = min(run, end+diffContext)
				break
			}
			end = run
		}
		aStart, bStart := ops[start].a, ops[start].b
		var aLen, bLen int
		for _, o := range ops[start:end] {
			if o.kind != '+' {
				aLen++
			}
			if o.kind != '-' {
				bLen++
			}
		}
		fmt.Fprintf(&out, "@@ -%s +%s @@\n", hunkRange(aStart, aLen), hunkRange(bStart, bLen))
		for _, o := range ops[start:end] {
			line := b
			idx := o.b
			if o.kind == '-' {
				line, idx = a, o.a
			}
			out.WriteByte(o.kind)
			out.WriteString(line[idx].text)
			if !line[idx].nl {
				out.WriteString("\n\\ No newline at end of file")
			}
			out.WriteByte('\n')
		}
		i = end
	}
	return out.String()
}

func hunkRange(start, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", start)
	}
	if n == 1 {
		return fmt.Sprintf("%d", start+1)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

type line struct {
	text string
	nl   bool // ends with a newline
}

func splitLines(s string) []line {
	var out []line
	for s != "" {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			out = append(out, line{text: s})
			break
		}
		out = append(out, line{text: s[:i], nl: true})
		s = s[i+1:]
	}
	return out
}

// diffOp is one line of an edit script: kind ' ' (in both), '-' (only in
// a) or '+' (only in b), with its index in a and in b (for '+', a is the
// position in a it is inserted at, and the other way round).
type diffOp struct {
	kind byte
	a, b int
}

// diffLines returns an edit script from a to b: the common prefix and
// suffix, and between them a longest common subsequence when the region
// is small enough, else all of it removed and added.
func diffLines(a, b []line) []diffOp {
	var ops []diffOp
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		ops = append(ops, diffOp{' ', pre, pre})
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	ma, mb := a[pre:len(a)-suf], b[pre:len(b)-suf]
	if len(ma)*len(mb) <= maxDiffCells && len(ma) > 0 && len(mb) > 0 {
		// lcs[i][j]: length of the LCS of ma[i:] and mb[j:].
		w := len(mb) + 1
		lcs := make([]int32, (len(ma)+1)*w)
		for i := len(ma) - 1; i >= 0; i-- {
			for j := len(mb) - 1; j >= 0; j-- {
				if ma[i] == mb[j] {
					lcs[i*w+j] = lcs[(i+1)*w+j+1] + 1
				} else {
					lcs[i*w+j] = max(lcs[(i+1)*w+j], lcs[i*w+j+1])
				}
			}
		}
		i, j := 0, 0
		for i < len(ma) || j < len(mb) {
			switch {
			case i < len(ma) && j < len(mb) && ma[i] == mb[j]:
				ops = append(ops, diffOp{' ', pre + i, pre + j})
				i++
				j++
			case i < len(ma) && (j == len(mb) || lcs[(i+1)*w+j] >= lcs[i*w+j+1]):
				// Removals first, as diff(1) prints them.
				ops = append(ops, diffOp{'-', pre + i, pre + j})
				i++
			default:
				ops = append(ops, diffOp{'+', pre + i, pre + j})
				j++
			}
		}
	} else {
		for i := range ma {
			ops = append(ops, diffOp{'-', pre + i, pre})
		}
		for j := range mb {
			ops = append(ops, diffOp{'+', pre + len(ma), pre + j})
		}
	}
	for k := 0; k < suf; k++ {
		ops = append(ops, diffOp{' ', len(a) - suf + k, len(b) - suf + k})
	}
	return ops
}
