// Package envflag holds command-line flags that default from the
// environment.
//
// One rule for every binary: a flag given on the command line wins; else
// its variable, when set and not empty; else the flag's default. Help
// names the variable beside each flag ("(env KAFKA_BROKERS)") and shows
// the built-in default, never a value taken from the environment (it may
// be a secret). A variable whose value does not parse is an error that
// names it, never a silent fall-back to the default.
package envflag

import (
	"encoding"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Error is a variable whose value does not parse.
type Error struct {
	Name, Value string
	Err         error
}

func (e *Error) Error() string {
	return fmt.Sprintf("environment variable %s=%q: %v", e.Name, e.Value, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// FlagSet is a flag.FlagSet whose flags may default from variables. Its
// Parse applies the variables after the command line, so a flag given
// there always wins.
type FlagSet struct {
	*flag.FlagSet
	binds []binding
}

// binding ties a variable to a flag (or to nothing: envOnly).
type binding struct {
	flag, env, usage string
	set              func(string) error
}

// New returns an empty flag set; like flag.NewFlagSet.
func New(name string, h flag.ErrorHandling) *FlagSet {
	f := &FlagSet{FlagSet: flag.NewFlagSet(name, h)}
	f.FlagSet.Usage = func() {
		if f.Name() == "" {
			fmt.Fprintf(f.Output(), "Usage:\n")
		} else {
			fmt.Fprintf(f.Output(), "Usage of %s:\n", f.Name())
		}
		f.PrintDefaults()
	}
	return f
}

// Parse parses the command line, then sets every flag that was not given
// from its variable.
func (f *FlagSet) Parse(args []string) error {
	if err := f.FlagSet.Parse(args); err != nil {
		return err
	}
	return f.apply()
}

// ParseInterspersed is Parse for commands whose flags may come before or
// after their positional arguments ("approve ID --comment x" as well as
// "approve --comment x ID"); it returns the positional arguments.
func (f *FlagSet) ParseInterspersed(args []string) ([]string, error) {
	var pos []string
	for {
		if err := f.FlagSet.Parse(args); err != nil {
			return nil, err
		}
		args = f.Args()
		if len(args) == 0 {
			break
		}
		if args[0] == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	return pos, f.apply()
}

// apply sets each bound value whose flag was not given from its variable.
// Like a bad flag, a bad variable is printed to Output and handled as the
// set's ErrorHandling says.
func (f *FlagSet) apply() error {
	given := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	var errs []error
	for _, b := range f.binds {
		if b.env == "" || b.flag != "" && given[b.flag] {
			continue
		}
		raw, ok := os.LookupEnv(b.env)
		if !ok || raw == "" {
			continue
		}
		if err := b.set(raw); err != nil {
			var ne *strconv.NumError
			if errors.As(err, &ne) {
				err = ne.Err
			}
			errs = append(errs, &Error{Name: b.env, Value: raw, Err: err})
		}
	}
	err := errors.Join(errs...)
	if err == nil {
		return nil
	}
	fmt.Fprintln(f.Output(), err)
	switch f.ErrorHandling() {
	case flag.ExitOnError:
		os.Exit(2)
	case flag.PanicOnError:
		panic(err)
	}
	return err
}

// PrintDefaults prints the flags, then the variables that have no flag.
func (f *FlagSet) PrintDefaults() {
	f.FlagSet.PrintDefaults()
	first := true
	for _, b := range f.binds {
		if b.flag != "" || b.env == "" {
			continue
		}
		if first {
			fmt.Fprintln(f.Output(), "  environment only:")
			first = false
		}
		fmt.Fprintf(f.Output(), "  %s\n    \t%s\n", b.env, b.usage)
	}
}

// VarEnv defines a flag whose value v also takes from variable env (none
// when env is empty). v's current value is the default.
func (f *FlagSet) VarEnv(v flag.Value, name, env, usage string) {
	f.FlagSet.Var(v, name, withEnv(usage, env))
	f.binds = append(f.binds, binding{flag: name, env: env, set: v.Set})
}

// StringEnv defines a string flag with default def and variable env.
func (f *FlagSet) StringEnv(p *string, name, env, def, usage string) {
	f.FlagSet.StringVar(p, name, def, withEnv(usage, env))
	f.bind(name, env, func(s string) error { *p = s; return nil })
}

// IntEnv defines an int flag with default def and variable env.
func (f *FlagSet) IntEnv(p *int, name, env string, def int, usage string) {
	f.FlagSet.IntVar(p, name, def, withEnv(usage, env))
	f.bind(name, env, func(s string) error {
		n, err := strconv.ParseInt(s, 0, strconv.IntSize)
		*p = int(n)
		return err
	})
}

// Int64Env defines an int64 flag with default def and variable env.
func (f *FlagSet) Int64Env(p *int64, name, env string, def int64, usage string) {
	f.FlagSet.Int64Var(p, name, def, withEnv(usage, env))
	f.bind(name, env, func(s string) (err error) { *p, err = strconv.ParseInt(s, 0, 64); return err })
}

// BoolEnv defines a bool flag with default def and variable env, which
// takes what strconv.ParseBool does (true, false, 1, 0, …).
func (f *FlagSet) BoolEnv(p *bool, name, env string, def bool, usage string) {
	f.FlagSet.BoolVar(p, name, def, withEnv(usage, env))
	f.bind(name, env, func(s string) (err error) { *p, err = strconv.ParseBool(s); return err })
}

// DurationEnv defines a time.Duration flag with default def and variable
// env.
func (f *FlagSet) DurationEnv(p *time.Duration, name, env string, def time.Duration, usage string) {
	f.FlagSet.DurationVar(p, name, def, withEnv(usage, env))
	f.bind(name, env, func(s string) (err error) { *p, err = time.ParseDuration(s); return err })
}

// ListEnv defines a comma-separated list flag with default def and
// variable env. A flag given more than once adds to the list.
func (f *FlagSet) ListEnv(p *[]string, name, env string, def []string, usage string) {
	*p = def
	f.VarEnv(&list{p: p}, name, env, usage)
}

// TextEnv defines a flag whose value p parses itself (a slog.LevelVar),
// with default def and variable env.
func (f *FlagSet) TextEnv(p encoding.TextUnmarshaler, name, env string, def encoding.TextMarshaler, usage string) {
	b, err := def.MarshalText()
	if err == nil {
		err = p.UnmarshalText(b)
	}
	if err != nil {
		panic(fmt.Sprintf("envflag: default of --%s: %v", name, err))
	}
	f.VarEnv(text{p}, name, env, usage)
}

// text is a flag value that parses itself.
type text struct{ p encoding.TextUnmarshaler }

func (t text) Set(s string) error { return t.p.UnmarshalText([]byte(s)) }

func (t text) String() string {
	if m, ok := t.p.(encoding.TextMarshaler); ok {
		b, _ := m.MarshalText()
		return string(b)
	}
	return ""
}

// FromEnv sets *p from variable env alone, for a value that must not be a
// flag (a flag's value shows in ps): a password, a token. *p keeps its
// value when the variable is unset or empty. p is a *string, *[]string
// (comma-separated), *int, *int64, *bool or *time.Duration.
func (f *FlagSet) FromEnv(p any, env, usage string) {
	var set func(string) error
	switch p := p.(type) {
	case *string:
		set = func(s string) error { *p = s; return nil }
	case *[]string:
		set = func(s string) error { *p = strings.Split(s, ","); return nil }
	case *int:
		set = func(s string) error { n, err := strconv.ParseInt(s, 0, strconv.IntSize); *p = int(n); return err }
	case *int64:
		set = func(s string) (err error) { *p, err = strconv.ParseInt(s, 0, 64); return err }
	case *bool:
		set = func(s string) (err error) { *p, err = strconv.ParseBool(s); return err }
	case *time.Duration:
		set = func(s string) (err error) { *p, err = time.ParseDuration(s); return err }
	default:
		panic(fmt.Sprintf("envflag: FromEnv(%T, %s): unsupported type", p, env))
	}
	f.binds = append(f.binds, binding{env: env, usage: usage, set: set})
}

func (f *FlagSet) bind(name, env string, set func(string) error) {
	f.binds = append(f.binds, binding{flag: name, env: env, set: set})
}

// withEnv names the variable in a flag's help.
func withEnv(usage, env string) string {
	if env == "" {
		return usage
	}
	return usage + " (env " + env + ")"
}

// list is a comma-separated flag value; the first Set replaces the
// default, later ones add to it.
type list struct {
	p   *[]string
	set bool
}

func (l *list) String() string {
	if l == nil || l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l *list) Set(s string) error {
	if !l.set {
		*l.p, l.set = nil, true
	}
	*l.p = append(*l.p, strings.Split(s, ",")...)
	return nil
}
