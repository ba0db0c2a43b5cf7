package envflag

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// values is every kind of binding, read back after Parse.
type values struct {
	S      string
	I      int
	I64    int64
	B      bool
	D      time.Duration
	L      []string
	Level  string
	Secret string
	Pos    []string
}

func bindAll(fs *FlagSet, v *values, level *slog.LevelVar) {
	fs.StringEnv(&v.S, "s", "T_S", "def", "a string")
	fs.IntEnv(&v.I, "i", "T_I", 7, "an int")
	fs.Int64Env(&v.I64, "i64", "T_I64", -1, "an int64")
	fs.BoolEnv(&v.B, "b", "T_B", true, "a bool")
	fs.DurationEnv(&v.D, "d", "T_D", time.Second, "a duration")
	fs.ListEnv(&v.L, "l", "T_L", []string{"x"}, "a list")
	fs.TextEnv(level, "level", "T_LEVEL", slog.LevelInfo, "a level")
	fs.FromEnv(&v.Secret, "T_SECRET", "a secret")
}

func TestParse(t *testing.T) {
	defaults := values{S: "def", I: 7, I64: -1, B: true, D: time.Second, L: []string{"x"}, Level: "INFO"}
	with := func(f func(*values)) values { v := defaults; f(&v); return v }
	cases := []struct {
		name    string
		env     map[string]string
		args    []string
		want    values
		wantErr string // the variable the error names
	}{
		{name: "defaults", want: defaults},
		{name: "empty variables are unset", env: map[string]string{"T_S": "", "T_I": "", "T_L": ""}, want: defaults},
		{name: "variables", env: map[string]string{"T_S": "env", "T_I": "0x10", "T_I64": "1001", "T_B": "false", "T_D": "1m",
			"T_L": "a,b", "T_LEVEL": "debug", "T_SECRET": "pw"},
			want: values{S: "env", I: 16, I64: 1001, D: time.Minute, L: []string{"a", "b"}, Level: "DEBUG", Secret: "pw"}},
		{name: "flags beat variables", env: map[string]string{"T_S": "env", "T_I": "3", "T_B": "false", "T_L": "a,b", "T_LEVEL": "debug"},
			args: []string{"-s", "flag", "-i", "4", "-b", "-l", "c", "-level", "warn"},
			want: with(func(v *values) { v.S, v.I, v.L, v.Level = "flag", 4, []string{"c"}, "WARN" })},
		{name: "a flag equal to the default still wins", env: map[string]string{"T_S": "env"}, args: []string{"-s", "def"}, want: defaults},
		{name: "list flags add up", args: []string{"-l", "a,b", "-l", "c"}, want: with(func(v *values) { v.L = []string{"a", "b", "c"} })},
		{name: "bad int", env: map[string]string{"T_I": "ten"}, wantErr: "T_I"},
		{name: "bad int64", env: map[string]string{"T_I64": "1.5"}, wantErr: "T_I64"},
		{name: "bad bool", env: map[string]string{"T_B": "yes"}, wantErr: "T_B"},
		{name: "bad duration", env: map[string]string{"T_D": "10"}, wantErr: "T_D"},
		{name: "bad level", env: map[string]string{"T_LEVEL": "loud"}, wantErr: "T_LEVEL"},
		{name: "a bad variable under a given flag is not read", env: map[string]string{"T_I": "ten"}, args: []string{"-i", "5"},
			want: with(func(v *values) { v.I = 5 })},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range []string{"T_S", "T_I", "T_I64", "T_B", "T_D", "T_L", "T_LEVEL", "T_SECRET"} {
				t.Setenv(n, tc.env[n])
			}
			fs := New("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var got values
			level := new(slog.LevelVar)
			bindAll(fs, &got, level)
			err := fs.Parse(tc.args)
			if tc.wantErr != "" {
				var e *Error
				if !errors.As(err, &e) || e.Name != tc.wantErr || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got.Level = level.Level().String()
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}

// Flags after positional arguments count, and the variables still yield
// to them.
func TestParseInterspersed(t *testing.T) {
	t.Setenv("T_S", "env")
	t.Setenv("T_L", "a,b")
	fs := New("t", flag.ContinueOnError)
	var s string
	var l []string
	fs.StringEnv(&s, "s", "T_S", "def", "")
	fs.ListEnv(&l, "l", "T_L", nil, "")
	pos, err := fs.ParseInterspersed([]string{"one", "-s", "flag", "two", "--", "-three"})
	if err != nil {
		t.Fatal(err)
	}
	got := values{S: s, L: l, Pos: pos}
	want := values{S: "flag", L: []string{"a", "b"}, Pos: []string{"one", "two", "-three"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got)\n%s", d)
	}
}

// Help names each flag's variable and shows the built-in default, never
// the variable's value (it may be a secret); variables without a flag
// are listed after the flags.
func TestHelp(t *testing.T) {
	t.Setenv("T_S", "hunter2")
	fs := New("t", flag.ContinueOnError)
	var out strings.Builder
	fs.SetOutput(&out)
	var v values
	bindAll(fs, &v, new(slog.LevelVar))
	if err := fs.Parse([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"a string (env T_S) (default \"def\")", "an int (env T_I) (default 7)", "a list (env T_L) (default x)",
		"environment only:", "T_SECRET\n    \ta secret"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "hunter2") {
		t.Errorf("help shows a variable's value:\n%s", out.String())
	}
}
