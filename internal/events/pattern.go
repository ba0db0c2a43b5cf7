package events

import (
	"regexp"
	"regexp/syntax"
)

// pattern matches a schema "pattern". Go's regexp costs tens of ns per byte,
// and an event has a few hundred bytes of ids and hashes under patterns, so
// anchored patterns made of ASCII character classes and literals with
// repetition counts (all but two in the schemas) run on a small
// backtracking matcher over bytes; the rest use regexp. A test holds the
// two to the same answers on fuzzed strings.
type pattern struct {
	re    *regexp.Regexp
	items []patItem // nil: use re
}

// patItem is a character class repeated min..max times (max -1: unbounded).
type patItem struct {
	class    [4]uint64 // bit b: byte b (ASCII only) is in the class
	min, max int
}

func (it *patItem) has(c byte) bool { return c < 128 && it.class[c>>6]&(1<<(c&63)) != 0 }

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
	p.items = itemsOf(ast)
	return p, nil
}

// itemsOf translates ^ atom* $ where each atom is an ASCII class or literal
// with an optional repeat; nil when the pattern has another shape.
func itemsOf(re *syntax.Regexp) []patItem {
	if re.Op != syntax.OpConcat || len(re.Sub) < 2 ||
		re.Sub[0].Op != syntax.OpBeginText || re.Sub[len(re.Sub)-1].Op != syntax.OpEndText {
		return nil
	}
	var items []patItem
	for _, sub := range re.Sub[1 : len(re.Sub)-1] {
		min, max := 1, 1
		atom := sub
		switch sub.Op {
		case syntax.OpStar:
			min, max, atom = 0, -1, sub.Sub[0]
		case syntax.OpPlus:
			min, max, atom = 1, -1, sub.Sub[0]
		case syntax.OpQuest:
			min, max, atom = 0, 1, sub.Sub[0]
		case syntax.OpRepeat:
			min, max, atom = sub.Min, sub.Max, sub.Sub[0]
		}
		switch atom.Op {
		case syntax.OpLiteral:
			if atom.Flags&syntax.FoldCase != 0 || (len(atom.Rune) > 1 && (min != 1 || max != 1)) {
				return nil
			}
			for _, r := range atom.Rune {
				it := patItem{min: min, max: max}
				if r >= 128 {
					return nil
				}
				it.class[r>>6] |= 1 << (r & 63)
				items = append(items, it)
			}
		case syntax.OpCharClass:
			it := patItem{min: min, max: max}
			for i := 0; i < len(atom.Rune); i += 2 {
				lo, hi := atom.Rune[i], atom.Rune[i+1]
				if hi >= 128 {
					return nil
				}
				for r := lo; r <= hi; r++ {
					it.class[r>>6] |= 1 << (r & 63)
				}
			}
			items = append(items, it)
		default:
			return nil
		}
	}
	return items
}

func (p *pattern) match(s []byte) bool {
	if p.items == nil {
		return p.re.Match(s)
	}
	return matchItems(p.items, s)
}

func matchItems(items []patItem, s []byte) bool {
	if len(items) == 0 {
		return len(s) == 0
	}
	it := &items[0]
	n := 0
	for n < len(s) && (it.max < 0 || n < it.max) && it.has(s[n]) {
		n++
	}
	if len(items) == 1 {
		return n == len(s) && n >= it.min
	}
	for ; n >= it.min; n-- {
		if matchItems(items[1:], s[n:]) {
			return true
		}
	}
	return false
}

func (p *pattern) String() string { return p.re.String() }
