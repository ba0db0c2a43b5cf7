package events

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadJSON(t *testing.T) {
	type read struct {
		Keys    []string
		Strs    []string
		Raws    []string
		Name    string
		Array   []string
		IsArray bool
	}
	for _, tc := range []struct {
		in   string
		want read
	}{
		{
			in: `{"a":"x","b":1,"c":true,"d":null,"e":{"name":"n1","name":"n2"},"f":["p","q\"",3]}`,
			want: read{
				Keys:    []string{"a", "b", "c", "d", "e", "f"},
				Strs:    []string{"x", "", "", "", "", ""},
				Raws:    []string{`"x"`, "1", "true", "null", `{"name":"n1","name":"n2"}`, `["p","q\"",3]`},
				Name:    "n2", // the last, as encoding/json reads it
				Array:   []string{"p", `q"`, ""},
				IsArray: true,
			},
		},
		{
			in: " { \"\\u0061\" : \"caf\\u00e9 \\ud83d\\ude00\\/\" , \"e\" : { } , \"f\" : [ ] } ",
			want: read{
				Keys:    []string{"a", "e", "f"},
				Strs:    []string{"café 😀/", "", ""},
				Raws:    []string{`"caf\u00e9 \ud83d\ude00\/"`, "{ }", "[ ]"},
				IsArray: true,
			},
		},
		{in: `{}`, want: read{}},
	} {
		var got read
		err := ReadJSON([]byte(tc.in), func(root JSONValue) error {
			if !root.Object(func(k string, v JSONValue) {
				got.Keys = append(got.Keys, k)
				got.Strs = append(got.Strs, v.Str())
				got.Raws = append(got.Raws, v.Raw())
			}) {
				t.Errorf("%s: not an object", tc.in)
			}
			got.Name = root.Field("e").Field("name").Str()
			got.Array, got.IsArray = root.Field("f").Strings()
			if _, ok := root.Field("missing").Strings(); ok {
				t.Errorf("%s: an absent member reads as an array", tc.in)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestReadJSONErrors(t *testing.T) {
	for _, tc := range []struct{ in, code string }{
		{`{"a":1`, CodeSyntax},
		{`{"a":1} x`, CodeSyntax},
		{"{\"a\":\"\xff\"}", CodeInvalidUTF8},
		{`{"a":"\ud800"}`, CodeInvalidUTF8},
	} {
		called := false
		err := ReadJSON([]byte(tc.in), func(JSONValue) error { called = true; return nil })
		var verr *ValidationError
		if !errors.As(err, &verr) || verr.Code != tc.code || !errors.Is(err, ErrValidation) {
			t.Errorf("%q: err %v, want code %s", tc.in, err, tc.code)
		}
		if called {
			t.Errorf("%q: f called on a syntax error", tc.in)
		}
	}
	var zero JSONValue
	if zero.Str() != "" || zero.Raw() != "" || zero.Object(func(string, JSONValue) {}) || zero.Field("a") != zero {
		t.Error("the zero JSONValue is not an absent value")
	}
}

// FuzzReadJSON: what ReadJSON accepts is JSON, and an object's string
// members read as encoding/json reads them.
func FuzzReadJSON(f *testing.F) {
	f.Add([]byte(`{"a":"x","b":{"c":["d"]},"a":"y"}`))
	f.Add([]byte(`{"\u0061":"\ud83d\ude00","n":-1.5e3,"t":[true,false,null]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		err := ReadJSON(data, func(root JSONValue) error {
			if !json.Valid(data) {
				t.Fatalf("accepted invalid JSON %q", data)
			}
			var want map[string]any
			if json.Unmarshal(data, &want) != nil {
				return nil // not an object
			}
			got := map[string]any{}
			if !root.Object(func(k string, v JSONValue) {
				var raw any
				if err := json.Unmarshal([]byte(v.Raw()), &raw); err != nil {
					t.Fatalf("Raw of %q: %v", k, err)
				}
				if s, ok := raw.(string); ok && s != v.Str() {
					t.Fatalf("Str of %q = %q, encoding/json %q", k, v.Str(), s)
				}
				got[k] = raw
			}) {
				t.Fatalf("an object is not an object: %q", data)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("members (-encoding/json +ReadJSON):\n%s", diff)
			}
			return nil
		})
		if err == nil {
			return
		}
		if !errors.Is(err, ErrValidation) {
			t.Fatalf("error %v is not a validation error", err)
		}
	})
}
