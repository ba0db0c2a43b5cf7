package otlp

import (
	"encoding/base64"
	"math"
	"strconv"
	"strings"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
)

// attrs is a record's attributes over its resource's: lookups search the
// record first. Records carry a dozen or two attributes, so a linear scan
// beats building a map.
type attrs struct {
	rec, res []*commonpb.KeyValue
}

func (a attrs) get(key string) *commonpb.AnyValue {
	for _, kv := range a.rec {
		if kv.GetKey() == key {
			return kv.GetValue()
		}
	}
	for _, kv := range a.res {
		if kv.GetKey() == key {
			return kv.GetValue()
		}
	}
	return nil
}

// str returns the first of keys that is set, as a string.
func (a attrs) str(keys ...string) string {
	for _, k := range keys {
		if v := a.get(k); v != nil {
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
		if a.get(k) != nil {
			return true
		}
	}
	return false
}

// uint returns the first of keys that holds a non-negative number (an
// int, a double or a decimal string), rounded down.
func (a attrs) uint(keys ...string) uint64 {
	for _, k := range keys {
		if f, ok := valueNumber(a.get(k)); ok {
			return clampUint(f)
		}
	}
	return 0
}

// float returns the first of keys that holds a number.
func (a attrs) float(keys ...string) (float64, bool) {
	for _, k := range keys {
		if f, ok := valueNumber(a.get(k)); ok {
			return f, true
		}
	}
	return 0, false
}

// boolean reads a bool, or the strings true/false (Claude Code sends
// "true").
func (a attrs) boolean(key string) (bool, bool) {
	v := a.get(key)
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue, true
	case *commonpb.AnyValue_StringValue:
		b, err := strconv.ParseBool(strings.TrimSpace(x.StringValue))
		return b, err == nil
	case *commonpb.AnyValue_IntValue:
		return x.IntValue != 0, true
	}
	return false, false
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

func valueNumber(v *commonpb.AnyValue) (float64, bool) {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_IntValue:
		return float64(x.IntValue), true
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue, !math.IsNaN(x.DoubleValue) && !math.IsInf(x.DoubleValue, 0)
	case *commonpb.AnyValue_StringValue:
		f, err := strconv.ParseFloat(strings.TrimSpace(x.StringValue), 64)
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	return 0, false
}

// valueString renders a value as text: strings as they are, numbers and
// bools in Go's form, arrays as comma-separated, bytes as base64. Maps
// are not rendered (ok false).
func valueString(v *commonpb.AnyValue) (string, bool) {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue, true
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue), true
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10), true
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64), true
	case *commonpb.AnyValue_BytesValue:
		return base64.StdEncoding.EncodeToString(x.BytesValue), true
	case *commonpb.AnyValue_ArrayValue:
		var parts []string
		for _, e := range x.ArrayValue.GetValues() {
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
	v := a.get(key)
	var out []string
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_ArrayValue:
		for _, e := range x.ArrayValue.GetValues() {
			if s, ok := valueString(e); ok && strings.TrimSpace(s) != "" {
				out = append(out, strings.TrimSpace(s))
			}
		}
	case *commonpb.AnyValue_StringValue:
		for _, s := range strings.Split(x.StringValue, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}
