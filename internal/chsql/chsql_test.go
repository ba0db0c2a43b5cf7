package chsql

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// ruleOpts are detection rules' options: a SELECT and no write keyword.
var ruleOpts = []Option{Kinds("SELECT", "WITH"), Forbid("INSERT", "ALTER", "DROP", "CREATE", "TRUNCATE", "RENAME",
	"OPTIMIZE", "ATTACH", "DETACH", "KILL", "SYSTEM", "GRANT", "REVOKE", "SET", "DELETE", "UPDATE", "OUTFILE",
	"EXCHANGE", "USE", "INFILE")}

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		sql  string
		opts []Option
		want Code // "" lets it through
	}{
		// What compliance queries may run.
		{"select", "SELECT 1", nil, ""},
		{"lower case, trailing semicolon", "  select 1;", nil, ""},
		{"trailing semicolons", "SELECT 1;;", nil, ""},
		{"union in parentheses", "(SELECT 1) UNION ALL (SELECT 2)", nil, ""},
		{"with", "WITH 1 AS x SELECT x", nil, ""},
		{"show", "SHOW TABLES", nil, ""},
		{"describe", "DESCRIBE events", nil, ""},
		{"exists", "EXISTS TABLE events", nil, ""},
		{"show create is a read", "SHOW CREATE TABLE events", nil, ""},
		{"system tables", "SELECT * FROM system.parts", nil, ""},
		{"keywords in a string", "SELECT 'DROP TABLE x; DELETE'", nil, ""},
		{"keyword as a quoted identifier", "SELECT `INSERT` FROM t", nil, ""},
		{"semicolon in a line comment", "SELECT 1 -- ; DROP TABLE x", nil, ""},
		{"escaped quote", `SELECT 'a\'; DROP' AS x`, nil, ""},
		{"doubled quote", "SELECT 'a''; DROP' AS x", nil, ""},
		{"unicode identifier", "SELECT 1 AS größe", nil, ""},
		{"insert", "INSERT INTO t VALUES (1)", nil, CodeNotRead},
		{"insert lower case", "insert into t select 1", nil, CodeNotRead},
		{"drop", "DROP TABLE t", nil, CodeNotRead},
		{"alter delete", "ALTER TABLE t DELETE WHERE 1", nil, CodeNotRead},
		{"second statement", "SELECT 1; SELECT 2", nil, CodeMultiple},
		{"second statement writes", "SELECT 1; DROP TABLE t", nil, CodeMultiple},
		{"keyword in a comment", "/* SELECT */ DROP TABLE t", nil, CodeNotRead},
		{"into outfile", "SELECT * FROM t INTO OUTFILE 'x'", nil, CodeOutfile},
		{"into outfile around a comment", "SELECT * FROM t INTO /* x */ OUTFILE 'x'", nil, CodeOutfile},
		{"readonly setting", "SELECT 1 SETTINGS readonly = 0", nil, CodeSetting},
		{"allow_ddl setting", "SELECT 1 SETTINGS allow_ddl = 1", nil, CodeSetting},
		{"quoted readonly setting", "SELECT 1 SETTINGS `readonly` = 0", nil, CodeSetting},
		{"set", "SET max_threads = 1", nil, CodeNotRead},
		{"empty", "", nil, CodeEmpty},
		{"only semicolons", "   ;  ", nil, CodeEmpty},
		{"only parentheses", "((", nil, CodeEmpty},
		{"unterminated string", "SELECT 'unterminated", nil, CodeSyntax},
		{"unterminated identifier", "SELECT `x", nil, CodeSyntax},
		{"unterminated comment", "/* unterminated SELECT 1", nil, CodeSyntax},
		{"rename", "RENAME TABLE a TO b", nil, CodeNotRead},
		{"kill", "KILL QUERY WHERE 1", nil, CodeNotRead},
		{"optimize", "OPTIMIZE TABLE t", nil, CodeNotRead},
		{"system", "SYSTEM SHUTDOWN", nil, CodeNotRead},
		{"number first", "1 SELECT", nil, CodeNotRead},
		{"string first", "'x' SELECT", nil, CodeNotRead},
		{"placeholder first", "{from} SELECT", nil, CodeNotRead},

		// Where the two guards used to disagree. Nested block comments: the
		// query guard nested them (current servers), the rule guard did not
		// (18.16). Both readings are checked now.
		{"nested comment before the statement", "-- comment\n/* nested /* */ */ SELECT 1", nil, ""},
		{"nested comment, same for rules", "/* nested /* */ */ SELECT 1", ruleOpts, ""},
		{"nested comment with a harmless tail", "SELECT 1 /* a /* b */ c */", nil, ""},
		{"nested comment hides a statement from 18.16", "SELECT 1 /* /* */ ; DROP TABLE t -- */", nil, CodeMultiple},
		{"nested comment hides a setting from 18.16", "SELECT 1 /* /* */ SETTINGS readonly = 0 -- */", nil, CodeSetting},
		{"nested comment hides the first word from 18.16", "/* /* */ DROP TABLE t -- */ SELECT 1", nil, CodeNotRead},
		{"nested comment hides a write word from 18.16", "SELECT 1 /* /* */ , (INSERT) -- */", ruleOpts, CodeForbidden},
		{"nested comment hides a quote from 18.16", "SELECT 1 /* /* */ ' */", nil, CodeSyntax},
		{"flat comment hides a statement from current servers", "SELECT 1 /* /* */ ; DROP TABLE t /* */ */", nil, CodeMultiple},
		// # comments: the query guard read them, the rule guard read '#' as
		// punctuation (and a quote after it as a string).
		{"hash comment", "SELECT 1 # DROP", ruleOpts, ""},
		{"hash comment hides no quote", "SELECT 1 # '\n; SELECT 2 -- '", ruleOpts, CodeMultiple},
		// // comments: 18.16 reads them; neither guard did.
		{"slash comment", "SELECT 1 // ; DROP", nil, ""},
		{"slash comment hides no quote", "SELECT 1 // '\nSETTINGS readonly = 0 -- '", nil, CodeSetting},
		// A line comment ends at \r too: the guard checks more, not less.
		{"carriage return ends a comment", "SELECT 1 -- x\r; DROP TABLE t", nil, CodeMultiple},
		// Unicode white space splits words, as on current servers; the
		// query guard read it as part of a word.
		{"unicode space before a setting", "SELECT 1 SETTINGS\u00a0readonly = 0", nil, CodeSetting},
		{"unicode letter splits a word", "SELECT 1 AS xINSERTé", ruleOpts, ""},
		{"unicode letter after a keyword", "SELECT 1 AS éINSERT", ruleOpts, CodeForbidden},
		// Heredoc strings of current servers.
		{"heredoc", "SELECT $$'$$ ; DROP TABLE t ; SELECT '", nil, CodeDollar},

		// Detection rules: SELECT or WITH only, no write keyword anywhere.
		{"rule select", "SELECT a AS group_key FROM events WHERE t >= {from} AND t < {to}", ruleOpts, ""},
		{"rule with", "WITH 1 AS x SELECT x", ruleOpts, ""},
		{"rule in parentheses", "(SELECT 1)", ruleOpts, ""},
		{"rule show", "SHOW TABLES", ruleOpts, CodeNotRead},
		{"rule insert first", "INSERT INTO events SELECT * FROM events", ruleOpts, CodeNotRead},
		{"rule insert inside", "SELECT 1 UNION ALL INSERT INTO x VALUES (1)", ruleOpts, CodeForbidden},
		{"rule forbidden word in lower case", "SELECT 1 AS set", ruleOpts, CodeForbidden},
		{"rule forbidden word in a string", "SELECT 'drop it' AS m", ruleOpts, ""},
		{"rule into outfile", "SELECT 1 INTO OUTFILE 'x'", ruleOpts, CodeForbidden},
		{"rule write word wins over a second statement", "SELECT 1; INSERT INTO x VALUES (1)", ruleOpts, CodeForbidden},
		{"rule two statements", "SELECT 1; SELECT 2", ruleOpts, CodeMultiple},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Check(tc.sql, tc.opts...)
			var got Code
			var e *Error
			if errors.As(err, &e) {
				got = e.Code
				if !errors.Is(err, ErrRefused) || e.Reason == "" {
					t.Errorf("error %v does not wrap ErrRefused with a reason", err)
				}
			} else if err != nil {
				t.Fatalf("error %v is not an *Error", err)
			}
			if got != tc.want {
				t.Errorf("Check(%q) = %v (code %q), want code %q", tc.sql, err, got, tc.want)
			}
		})
	}
}

func TestReasons(t *testing.T) {
	tests := []struct {
		sql  string
		opts []Option
		want string
	}{
		{"DROP TABLE t", nil, "DROP is not a read statement"},
		{"DROP TABLE t", ruleOpts, "DROP is not a read statement: must be a SELECT or WITH statement"},
		{"SHOW TABLES", ruleOpts, "SHOW is not allowed here: must be a SELECT or WITH statement"},
		{"'x'", nil, `"'x'" is not a read statement`},
		{"SELECT 1 UNION ALL INSERT INTO x VALUES (1)", ruleOpts, "INSERT is not allowed"},
		{"SELECT 1 INTO OUTFILE 'x'", nil, "OUTFILE is not allowed: INTO OUTFILE writes a file"},
		{"SELECT 1; SELECT 2", nil, "must be one statement (found ';')"},
		{"SELECT 1 SETTINGS READONLY = 0", nil, "the readonly setting cannot be changed"},
		{"SELECT 'x", nil, "unterminated ' quote"},
		{"SELECT 1 /* /* */ ; DROP TABLE t -- */", nil, "must be one statement (found ';') (where the first */ ends a comment, as on ClickHouse 18.16)"},
	}
	for _, tc := range tests {
		_, err := Check(tc.sql, tc.opts...)
		if err == nil {
			t.Errorf("Check(%q) passed", tc.sql)
			continue
		}
		if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
			t.Errorf("Check(%q) reason (-want +got):\n%s", tc.sql, diff)
		}
	}
}

func TestTokenize(t *testing.T) {
	type tok struct {
		K    Kind
		Text string
	}
	tests := []struct {
		sql  string
		want []tok
	}{
		{"SELECT a1,_b FROM t;", []tok{{Word, "SELECT"}, {Space, " "}, {Word, "a1"}, {Punct, ","}, {Word, "_b"}, {Space, " "},
			{Word, "FROM"}, {Space, " "}, {Word, "t"}, {Punct, ";"}}},
		{"x -- c\n\t/* a /* b */ c */y", []tok{{Word, "x"}, {Space, " "}, {Comment, "-- c"}, {Space, "\n\t"},
			{Comment, "/* a /* b */ c */"}, {Word, "y"}}},
		{"#c\r//d\n", []tok{{Comment, "#c"}, {Space, "\r"}, {Comment, "//d"}, {Space, "\n"}}},
		{`'a\'b''c' "d""e" ` + "`f`", []tok{{String, `'a\'b''c'`}, {Space, " "}, {Ident, `"d""e"`}, {Space, " "}, {Ident, "`f`"}}},
		{"{from} { to }{1x}{a b}", []tok{{Param, "{from}"}, {Space, " "}, {Param, "{ to }"}, {Punct, "{"}, {Word, "1x"},
			{Punct, "}"}, {Punct, "{"}, {Word, "a"}, {Space, " "}, {Word, "b"}, {Punct, "}"}}},
		{"a\u00a0é\xffb", []tok{{Word, "a"}, {Space, "\u00a0"}, {Punct, "é"}, {Punct, "\xff"}, {Word, "b"}}},
		{"/*/ x */", []tok{{Comment, "/*/ x */"}}},
	}
	for _, tc := range tests {
		toks, err := Tokenize(tc.sql)
		if err != nil {
			t.Errorf("Tokenize(%q): %v", tc.sql, err)
			continue
		}
		var got []tok
		for _, x := range toks {
			got = append(got, tok{x.Kind, x.Text})
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Tokenize(%q) (-want +got):\n%s", tc.sql, diff)
		}
	}
	flat, err := tokenize("/* a /* b */ c */", false)
	if err != nil || len(flat) != 6 || flat[0].Text != "/* a /* b */" {
		t.Errorf("flat reading = %v, %v; want the first */ to end the comment", flat, err)
	}
	names := map[string]string{"`a`": "a", `"b"`: "b", "{ c }": "c", "d": "d"}
	for in, want := range names {
		toks, _ := Tokenize(in)
		if got := toks[0].Name(); got != want {
			t.Errorf("Name of %q = %q, want %q", in, got, want)
		}
	}
}

func TestKinds(t *testing.T) {
	if diff := cmp.Diff([]string{"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN"}, ReadKinds()); diff != "" {
		t.Errorf("ReadKinds (-want +got):\n%s", diff)
	}
	ReadKinds()[0] = "INSERT" // a copy: the guard's list is not changed
	if _, err := Check("INSERT INTO t VALUES (1)"); err == nil {
		t.Error("changing ReadKinds' result changed the guard")
	}
	// Kinds cannot widen the guard to a write.
	if _, err := Check("INSERT INTO t VALUES (1)", Kinds("INSERT", "SELECT")); err == nil {
		t.Error("Kinds(INSERT) let an INSERT through")
	}
	if _, err := Check("SELECT 1", Kinds("select")); err != nil {
		t.Errorf("Kinds is case-insensitive: %v", err)
	}
}

// FuzzCheck checks the tokenizer loses nothing and that whatever the guard
// lets through holds its promises under both readings of block comments,
// and still does once its comments are gone.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		"SELECT 1", "DROP TABLE t", "SELECT ';' ; DROP", "/* /* */ SELECT", "`a``b`", "'\\''",
		"/* nested /* */ */ SELECT 1", "SELECT 1 /* /* */ ; DROP TABLE t -- */", "SELECT 1 # '\n; DROP -- '",
		"SELECT 1 // '\nSETTINGS readonly = 0 -- '", "SELECT $$'$$", "SELECT {from} FROM t", "SELECT 1 AS größe",
		"SELECT 1 INTO OUTFILE 'x'", "(((SELECT 1)))", "SELECT 1 SETTINGS\u00a0readonly=0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		for _, nested := range []bool{true, false} {
			toks, err := tokenize(sql, nested)
			if err != nil {
				continue
			}
			var b strings.Builder
			for _, tk := range toks {
				if tk.Text == "" || tk.Kind < Word || tk.Kind > Punct {
					t.Fatalf("%q: bad token %+v", sql, tk)
				}
				b.WriteString(tk.Text)
			}
			if b.String() != sql {
				t.Fatalf("tokens of %q join to %q", sql, b.String())
			}
		}
		for _, opts := range [][]Option{nil, ruleOpts} {
			toks, err := Check(sql, opts...)
			if err != nil {
				var e *Error
				if !errors.As(err, &e) || !errors.Is(err, ErrRefused) || e.Code == "" {
					t.Fatalf("%q: unexpected error kind: %v", sql, err)
				}
				continue
			}
			for _, nested := range []bool{true, false} {
				reading, _ := tokenize(sql, nested)
				promises(t, sql, reading, nested)
			}
			// The verdict does not hang on comments: without them (each one
			// a space) the statement still passes.
			var b strings.Builder
			for _, tk := range toks {
				if tk.Kind == Comment {
					b.WriteString(" ")
				} else {
					b.WriteString(tk.Text)
				}
			}
			if _, err := Check(b.String(), opts...); err != nil {
				t.Fatalf("%q passed, but not without its comments (%q): %v", sql, b.String(), err)
			}
		}
	})
}

// promises checks what a statement Check let through must be, in one
// reading: a read keyword first, no ';' but at the end, no INTO OUTFILE, no
// readonly or allow_ddl, no '$'.
func promises(t *testing.T, sql string, toks []Token, nested bool) {
	t.Helper()
	var sig []Token
	for _, tk := range toks {
		if tk.Kind != Space && tk.Kind != Comment {
			sig = append(sig, tk)
		}
	}
	end := len(sig)
	for end > 0 && sig[end-1].Kind == Punct && sig[end-1].Text == ";" {
		end--
	}
	i := 0
	for i < end && sig[i].Kind == Punct && (sig[i].Text == "(" || !nested) {
		i++
	}
	if i == end || sig[i].Kind != Word || !strings.Contains(" SELECT WITH SHOW DESCRIBE DESC EXISTS EXPLAIN ", " "+strings.ToUpper(sig[i].Text)+" ") {
		t.Fatalf("%q (nested %v) passed without a read keyword first", sql, nested)
	}
	for j, tk := range sig[:end] {
		up := strings.ToUpper(tk.Name())
		if tk.Kind == Punct && (tk.Text == ";" || tk.Text == "$") || (tk.Kind == Word || tk.Kind == Ident) && (up == "READONLY" || up == "ALLOW_DDL") ||
			up == "OUTFILE" && j > 0 && strings.ToUpper(sig[j-1].Text) == "INTO" {
			t.Fatalf("%q (nested %v) passed with %q", sql, nested, tk.Text)
		}
	}
}
