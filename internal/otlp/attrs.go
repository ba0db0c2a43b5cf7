package otlp

import (
	"encoding/base64"
	"math"
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// attrs is a record's attributes over its resource's: lookups search the
// record first. Records carry a dozen or two attributes, so a linear scan
// beats building a map.
type attrs struct {
	rec, res pcommon.Map
}

// get returns the value of key and whether it is set. A key sent without
// a value is not set, and on a record it still hides the resource's.
func (a attrs) get(key string) (pcommon.Value, bool) {
	v, ok := lookup(a.rec, key)
	if !ok {
		v, ok = lookup(a.res, key)
	}
	return v, ok && v.Type() != pcommon.ValueTypeEmpty
}

// lookup is m.Get that also answers for the zero Map (no attributes).
func lookup(m pcommon.Map, key string) (pcommon.Value, bool) {
	if m == (pcommon.Map{}) {
		return pcommon.Value{}, false
	}
	return m.Get(key)
}

// str returns the first of keys that is set, as a string.
func (a attrs) str(keys ...string) string {
	for _, k := range keys {
		if v, ok := a.get(k); ok {
			if s, ok := valueString(v); ok && s != "" {
				return s
			}
		}
	}
	return ""
}

// has says one of keys is set.
func (a attrs) has(keys ...string) bool {
	for _, k := range keys {
		if _, ok := a.get(k); ok {
			return true
		}
	}
	return false
}

// uint returns the first of keys that holds a non-negative number (an
// int, a double or a decimal string), rounded down.
func (a attrs) uint(keys ...string) uint64 {
	for _, k := range keys {
		if f, ok := a.number(k); ok {
			return clampUint(f)
		}
	}
	return 0
}

// float returns the first of keys that holds a number.
func (a attrs) float(keys ...string) (float64, bool) {
	for _, k := range keys {
		if f, ok := a.number(k); ok {
			return f, true
		}
	}
	return 0, false
}

// boolean reads a bool, or the strings true/false (Claude Code sends
// "true").
func (a attrs) boolean(key string) (bool, bool) {
	v, ok := a.get(key)
	if !ok {
		return false, false
	}
	switch v.Type() {
	case pcommon.ValueTypeBool:
		return v.Bool(), true
	case pcommon.ValueTypeStr:
		b, err := strconv.ParseBool(strings.TrimSpace(v.Str()))
		return b, err == nil
	case pcommon.ValueTypeInt:
		return v.Int() != 0, true
	}
	return false, false
}

func (a attrs) number(key string) (float64, bool) {
	v, ok := a.get(key)
	if !ok {
		return 0, false
	}
	return valueNumber(v)
}

func clampUint(f float64) uint64 {
	switch {
	case math.IsNaN(f) || f <= 0:
		return 0
	case f >= 1<<53-1:
		return 1<<53 - 1 // the schemas' maximum: JSON numbers stay exact
	}
	return uint64(f)
}

func valueNumber(v pcommon.Value) (float64, bool) {
	switch v.Type() {
	case pcommon.ValueTypeInt:
		return float64(v.Int()), true
	case pcommon.ValueTypeDouble:
		d := v.Double()
		return d, !math.IsNaN(d) && !math.IsInf(d, 0)
	case pcommon.ValueTypeStr:
		f, err := strconv.ParseFloat(strings.TrimSpace(v.Str()), 64)
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	return 0, false
}

// valueString renders a value as text: strings as they are, numbers and
// bools in Go's form, arrays as comma-separated, bytes as base64. Maps
// are not rendered (ok false).
func valueString(v pcommon.Value) (string, bool) {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return v.Str(), true
	case pcommon.ValueTypeBool:
		return strconv.FormatBool(v.Bool()), true
	case pcommon.ValueTypeInt:
		return strconv.FormatInt(v.Int(), 10), true
	case pcommon.ValueTypeDouble:
		return strconv.FormatFloat(v.Double(), 'g', -1, 64), true
	case pcommon.ValueTypeBytes:
		return base64.StdEncoding.EncodeToString(v.Bytes().AsRaw()), true
	case pcommon.ValueTypeSlice:
		var parts []string
		for _, e := range v.Slice().All() {
			if s, ok := valueString(e); ok {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, ","), true
	}
	return "", false
}

// list reads a list attribute: an array, or a comma-separated string.
func (a attrs) list(key string) []string {
	v, ok := a.get(key)
	if !ok {
		return nil
	}
	var out []string
	switch v.Type() {
	case pcommon.ValueTypeSlice:
		for _, e := range v.Slice().All() {
			if s, ok := valueString(e); ok && strings.TrimSpace(s) != "" {
				out = append(out, strings.TrimSpace(s))
			}
		}
	case pcommon.ValueTypeStr:
		for _, s := range strings.Split(v.Str(), ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}
