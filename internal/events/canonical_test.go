package events

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
)

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestCanonicalize(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{`{"b":1,"a":2}`, `{"a":2,"b":1}`},
		{` { "a" : [ 1 , -0 , {"z":null,"y":true} ] } `, `{"a":[1,0,{"y":true,"z":null}]}`},
		{`"<a & b>"`, `"<a & b>"`},
		{`"\u003c\u00e9\u2028\/"`, "\"<é\u2028/\""},
		{`"tab\there\u0001\"\\"`, `"tab\there\u0001\"\\"`},
		{`"\ud83d\ude00"`, `"😀"`},
		{`{"\u0062":1,"a":{}}`, `{"a":{},"b":1}`},
		{`[]`, `[]`},
		{`false`, `false`},
	}
	for _, tc := range tests {
		got, err := Canonicalize([]byte(tc.in))
		if err != nil {
			t.Errorf("Canonicalize(%s): %v", tc.in, err)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("Canonicalize(%s) = %s, want %s", tc.in, got, tc.want)
		}
		again, err := Canonicalize(got)
		if err != nil || string(again) != string(got) {
			t.Errorf("Canonicalize not idempotent on %s: %s, %v", got, again, err)
		}
	}
	for _, bad := range []string{`{"a":1,"a":2}`, `{"b":1,"a":1,"b":2}`, `1.5`, `1e3`, `"\ud800"`, "\"\xff\"", `{`, `1 2`} {
		if _, err := Canonicalize([]byte(bad)); !errors.Is(err, ErrNotCanonical) {
			t.Errorf("Canonicalize(%s) = %v, want ErrNotCanonical", bad, err)
		}
	}
}

func TestMarshalRejectsInvalidUTF8(t *testing.T) {
	e := testEvent(t, "s1", "r1", 0)
	e.Tenant = "a\xffb"
	if _, err := Marshal(e); !errors.Is(err, ErrNotCanonical) {
		t.Errorf("Marshal = %v", err)
	}
}

func TestTimeJSON(t *testing.T) {
	var tm Time
	for _, bad := range []string{`"2025-01-02T03:04:05Z"`, `"2025-02-30T03:04:05.000000Z"`, `"2025-01-02T03:04:05.000000+01:00"`, `12`, `"2025-01-02T24:04:05.000000Z"`} {
		if err := tm.UnmarshalJSON([]byte(bad)); !errors.Is(err, ErrTime) {
			t.Errorf("UnmarshalJSON(%s) = %v", bad, err)
		}
	}
	if err := tm.UnmarshalJSON([]byte(`"2024-02-29T23:59:59.999999Z"`)); err != nil {
		t.Fatal(err)
	}
	b, _ := tm.MarshalJSON()
	if string(b) != `"2024-02-29T23:59:59.999999Z"` {
		t.Errorf("MarshalJSON = %s", b)
	}
}
