package events

import (
	"encoding/binary"
	"math"
	"regexp"
	"regexp/syntax"
)

// pattern matches a schema "pattern". Go's regexp costs tens of ns per byte,
// and an event has a few hundred bytes of ids and hashes under patterns, so
// anchored patterns made of ASCII character classes and literals with
// repetition counts, optional groups and alternations of them (every
// pattern in the schemas) run on a small matcher over bytes; any other
// shape uses regexp. Tests hold the two to the same answers on fuzzed
// strings.
type pattern struct {
	re   *regexp.Regexp
	alts [][]patItem // the alternatives, each a sequence; nil: use re
}

// patItem is a character class repeated min..max times.
// greedy says that taking as many bytes as the class allows is the only
// way the rest of the sequence can match, so no shorter run is tried.
type patItem struct {
	class    [4]uint64 // bit b: byte b is in the class (ASCII only)
	min, max int       // max -1 (unbounded) becomes math.MaxInt in prepare
	greedy   bool
	in       *[256]bool // the class as a table, for the match loop
	// A class of at most six byte ranges (hex digits, names) is also
	// tested eight bytes at a time: bytes b of a word with b+addLo[k]
	// reaching 0x80 and b+addHi[k] not are in range k (see swar).
	nr           int
	addLo, addHi [6]uint64
}

// swar says all eight bytes of x (little endian) are in the class. For an
// ASCII byte b and a range lo..hi, b + (0x80-lo) has its high bit set
// exactly when b >= lo, b + (0x7f-hi) exactly when b > hi, and neither sum
// carries into the next byte.
func (it *patItem) swar(x uint64) bool {
	if x&msbs != 0 {
		return false
	}
	var in uint64
	for k := 0; k < it.nr; k++ {
		in |= (x + it.addLo[k]) &^ (x + it.addHi[k])
	}
	return in&msbs == msbs
}

func (it *patItem) has(c byte) bool { return it.class[c>>6]&(1<<(c&63)) != 0 }

// maxAlts bounds the alternatives a pattern may expand to.
const maxAlts = 16

func compilePattern(src string) (*pattern, error) {
	re, err := regexp.Compile(src)
	if err != nil {
		return nil, err
	}
	p := &pattern{re: re}
	ast, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		return p, nil
	}
	p.alts = altsOf(ast)
	for _, items := range p.alts {
		prepare(items)
	}
	return p, nil
}

// altsOf translates ^ x $ where x is built from ASCII classes and literals
// by concatenation, repetition of one class, alternation and optional
// groups; nil when the pattern has another shape.
func altsOf(re *syntax.Regexp) [][]patItem {
	if re.Op != syntax.OpConcat || len(re.Sub) < 2 ||
		re.Sub[0].Op != syntax.OpBeginText || re.Sub[len(re.Sub)-1].Op != syntax.OpEndText {
		return nil
	}
	return seqsOf(&syntax.Regexp{Op: syntax.OpConcat, Sub: re.Sub[1 : len(re.Sub)-1]})
}

// seqsOf returns the item sequences re matches as alternatives.
func seqsOf(re *syntax.Regexp) [][]patItem {
	switch re.Op {
	case syntax.OpEmptyMatch:
		return [][]patItem{nil}
	case syntax.OpCapture:
		return seqsOf(re.Sub[0])
	case syntax.OpConcat:
		out := [][]patItem{nil}
		for _, sub := range re.Sub {
			tails := seqsOf(sub)
			if tails == nil || len(out)*len(tails) > maxAlts {
				return nil
			}
			var next [][]patItem
			for _, head := range out {
				for _, tail := range tails {
					next = append(next, append(append([]patItem(nil), head...), tail...))
				}
			}
			out = next
		}
		return out
	case syntax.OpAlternate:
		var out [][]patItem
		for _, sub := range re.Sub {
			alts := seqsOf(sub)
			if alts == nil || len(out)+len(alts) > maxAlts {
				return nil
			}
			out = append(out, alts...)
		}
		return out
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return nil
		}
		var items []patItem
		for _, r := range re.Rune {
			it, ok := classItem([]rune{r, r}, 1, 1)
			if !ok {
				return nil
			}
			items = append(items, it)
		}
		return [][]patItem{items}
	case syntax.OpCharClass:
		if it, ok := classItem(re.Rune, 1, 1); ok {
			return [][]patItem{{it}}
		}
		return nil
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		min, max := re.Min, re.Max
		switch re.Op {
		case syntax.OpStar:
			min, max = 0, -1
		case syntax.OpPlus:
			min, max = 1, -1
		case syntax.OpQuest:
			min, max = 0, 1
		}
		if re.Flags&syntax.NonGreedy != 0 {
			return nil // same language, but keep to the plain shape
		}
		atom := re.Sub[0]
		var ranges []rune
		switch {
		case atom.Op == syntax.OpCharClass:
			ranges = atom.Rune
		case atom.Op == syntax.OpLiteral && len(atom.Rune) == 1 && atom.Flags&syntax.FoldCase == 0:
			ranges = []rune{atom.Rune[0], atom.Rune[0]}
		case min == 0 && max == 1:
			// An optional group: it, or nothing.
			alts := seqsOf(atom)
			if alts == nil || len(alts)+1 > maxAlts {
				return nil
			}
			return append(alts, nil)
		default:
			return nil
		}
		if it, ok := classItem(ranges, min, max); ok {
			return [][]patItem{{it}}
		}
	}
	return nil
}

// classItem builds an item from rune ranges (lo, hi pairs), all ASCII.
func classItem(ranges []rune, min, max int) (patItem, bool) {
	it := patItem{min: min, max: max}
	for i := 0; i+1 < len(ranges); i += 2 {
		lo, hi := ranges[i], ranges[i+1]
		if lo < 0 || hi >= 128 {
			return it, false
		}
		for r := lo; r <= hi; r++ {
			it.class[r>>6] |= 1 << (r & 63)
		}
	}
	return it, true
}

// prepare readies a sequence for matching. It sets greedy on each item
// that can never need to give a byte back: it has a fixed count, or no
// byte of its class can start what follows it (the next items up to the
// first that needs a byte).
func prepare(items []patItem) {
	for i := range items {
		it := &items[i]
		if it.max < 0 {
			it.max = math.MaxInt // so that the match loop has one bound
		}
		it.in = new([256]bool)
		for c := range it.in {
			it.in[c] = it.has(byte(c))
		}
		it.nr = 0
		for c := 0; c < 128; c++ {
			if !it.in[c] || (c > 0 && it.in[c-1]) {
				continue // not the start of a range
			}
			hi := c
			for hi+1 < 128 && it.in[hi+1] {
				hi++
			}
			if it.nr == len(it.addLo) {
				it.nr = -1 // too many ranges
				break
			}
			it.addLo[it.nr] = lsbs * uint64(0x80-c)
			it.addHi[it.nr] = lsbs * uint64(0x7f-hi)
			it.nr++
		}
		it.nr = max(it.nr, 0)
		if it.min == it.max {
			it.greedy = true
			continue
		}
		var first [4]uint64
		for j := i + 1; j < len(items); j++ {
			for w := range first {
				first[w] |= items[j].class[w]
			}
			if items[j].min > 0 {
				break
			}
		}
		it.greedy = first[0]&it.class[0] == 0 && first[1]&it.class[1] == 0
	}
}

func (p *pattern) match(s []byte) bool {
	if p.alts == nil {
		return p.re.Match(s)
	}
	for _, items := range p.alts {
		if matchItems(items, s) {
			return true
		}
	}
	return false
}

func matchItems(items []patItem, s []byte) bool {
	for len(items) > 0 {
		it := &items[0]
		if it.min == 1 && it.max == 1 {
			// One byte: a literal, or a class without a count.
			if len(s) == 0 || !it.in[s[0]] {
				return false
			}
			items, s = items[1:], s[1:]
			continue
		}
		n, end := 0, min(len(s), it.max)
		if it.nr > 0 {
			for ; n+8 <= end; n += 8 {
				if !it.swar(binary.LittleEndian.Uint64(s[n:])) {
					break
				}
			}
		} else {
			for ; n+8 <= end; n += 8 {
				w := s[n : n+8 : n+8]
				if !(it.in[w[0]] && it.in[w[1]] && it.in[w[2]] && it.in[w[3]] &&
					it.in[w[4]] && it.in[w[5]] && it.in[w[6]] && it.in[w[7]]) {
					break
				}
			}
		}
		for n < end && it.in[s[n]] {
			n++
		}
		if n < it.min {
			return false
		}
		if len(items) == 1 {
			return n == len(s)
		}
		if !it.greedy {
			for ; n >= it.min; n-- {
				if matchItems(items[1:], s[n:]) {
					return true
				}
			}
			return false
		}
		items, s = items[1:], s[n:]
	}
	return len(s) == 0
}

func (p *pattern) String() string { return p.re.String() }
