package query

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Param is one bound query parameter, referenced as @Name in the SQL.
type Param struct {
	Name  string
	Value any
}

var paramNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ParseParam reads `name=value` or `name:Type=value`. With a type the value
// must parse as that ClickHouse type (String, UInt8…UInt64, Int8…Int64,
// Float32, Float64, Date, DateTime); without one an unsigned decimal
// integer becomes UInt64, an RFC 3339 time becomes DateTime, and
// everything else stays a String. Whatever the value holds, the driver
// binds it as one literal.
func ParseParam(s string) (Param, error) {
	key, val, ok := strings.Cut(s, "=")
	if !ok {
		return Param{}, fmt.Errorf("%w: %q is not name=value", ErrParam, s)
	}
	name, typ, typed := strings.Cut(key, ":")
	if !paramNameRE.MatchString(name) {
		return Param{}, fmt.Errorf("%w: %q is not a parameter name", ErrParam, name)
	}
	if !typed {
		return Param{Name: name, Value: infer(val)}, nil
	}
	v, err := Convert(typ, val)
	if err != nil {
		return Param{}, fmt.Errorf("%w: %s: %v", ErrParam, name, err)
	}
	return Param{Name: name, Value: v}, nil
}

func infer(val string) any {
	if val != "" && strings.Trim(val, "0123456789") == "" && (val == "0" || val[0] != '0') {
		if n, err := strconv.ParseUint(val, 10, 64); err == nil {
			return n
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, val); err == nil {
		return t.UTC()
	}
	return val
}

// Convert parses val as the ClickHouse type typ.
func Convert(typ, val string) (any, error) {
	uint := func(bits int) (any, error) { return strconv.ParseUint(val, 10, bits) }
	sint := func(bits int) (any, error) { return strconv.ParseInt(val, 10, bits) }
	switch typ {
	case "String":
		return val, nil
	case "UInt8":
		return uint(8)
	case "UInt16":
		return uint(16)
	case "UInt32":
		return uint(32)
	case "UInt64":
		return uint(64)
	case "Int8":
		return sint(8)
	case "Int16":
		return sint(16)
	case "Int32":
		return sint(32)
	case "Int64":
		return sint(64)
	case "Float32", "Float64":
		f, err := strconv.ParseFloat(val, 64)
		if err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
			err = fmt.Errorf("%q is not a finite number", val)
		}
		return f, err
	case "Date":
		t, err := time.Parse(time.DateOnly, val)
		if err != nil {
			return nil, err
		}
		// A date literal as a string: ClickHouse converts it where a Date
		// is compared, on every server generation.
		return t.Format(time.DateOnly), nil
	case "DateTime":
		t, err := ParseTime(val, time.Now())
		if err != nil {
			return nil, err
		}
		return t, nil
	}
	return nil, fmt.Errorf("unsupported type %q", typ)
}

var relRE = regexp.MustCompile(`^([+-]?)(\d+(?:\.\d+)?)(us|µs|ms|s|m|h|d|w)$`)

// ParseTime reads an RFC 3339 time, `now`, or a duration relative to now
// (`-24h`, `7d` and `-7d` both mean seven days ago, `+1h` is in the future).
// Results are UTC, truncated to the second (DateTime's precision).
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "now" {
		return now.UTC().Truncate(time.Second), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC().Truncate(time.Second), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UTC(), nil
	}
	m := relRE.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, fmt.Errorf("%w: %q is neither RFC 3339 (2026-01-02T15:04:05Z), a date, nor relative (-24h, 7d)", ErrTime, s)
	}
	n, _ := strconv.ParseFloat(m[2], 64)
	unit := map[string]time.Duration{"us": time.Microsecond, "µs": time.Microsecond, "ms": time.Millisecond,
		"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour}[m[3]]
	d := time.Duration(n * float64(unit))
	if m[1] != "+" {
		d = -d
	}
	return now.Add(d).UTC().Truncate(time.Second), nil
}
