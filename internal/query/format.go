package query

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Output formats.
const (
	FormatTable  = "table"
	FormatCSV    = "csv"
	FormatJSON   = "json"
	FormatNDJSON = "ndjson"
	FormatHTML   = "html"
)

// Formats lists the output formats.
var Formats = []string{FormatTable, FormatCSV, FormatJSON, FormatNDJSON, FormatHTML}

// CheckFormat reports whether f is a known format.
func CheckFormat(f string) error {
	for _, k := range Formats {
		if f == k {
			return nil
		}
	}
	return fmt.Errorf("%w: %q (want one of %s)", ErrFormat, f, strings.Join(Formats, ", "))
}

// Cell renders one value for people and CSV: times as UTC
// `2006-01-02 15:04:05` (with microseconds when they are not zero),
// arrays as [a, b].
func Cell(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case time.Time:
		v = v.UTC()
		if v.Nanosecond() != 0 {
			return v.Format("2006-01-02 15:04:05.000000")
		}
		return v.Format(time.DateTime)
	case *string:
		if v == nil {
			return "NULL"
		}
		return *v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(v), 'f', -1, 32)
	case bool:
		if v {
			return "true"
		}
		return "false"
	case []string:
		return "[" + strings.Join(v, ", ") + "]"
	case []uint64:
		s := make([]string, len(v))
		for i, n := range v {
			s[i] = strconv.FormatUint(n, 10)
		}
		return "[" + strings.Join(s, ", ") + "]"
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer:
		// Nullable columns scan into pointers.
		if rv.IsNil() {
			return "NULL"
		}
		return Cell(rv.Elem().Interface())
	case reflect.Slice:
		s := make([]string, rv.Len())
		for i := range s {
			s[i] = Cell(rv.Index(i).Interface())
		}
		return "[" + strings.Join(s, ", ") + "]"
	}
	return fmt.Sprint(v)
}

// TableOptions shape the table for people.
type TableOptions struct {
	// Width is the terminal width; 0 means no limit. Cells are cut with …
	// so that the table fits; the widest columns give way first.
	Width int
}

// TerminalWidth returns the width of f when it is a terminal, else $COLUMNS,
// else 0 (no limit: the output is a file or a pipe).
func TerminalWidth(f *os.File) int {
	if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
		return int(ws.Col)
	}
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return 0
}

// WriteTable writes res as an aligned table with a header and a footer
// line counting the rows.
func WriteTable(w io.Writer, res *Result, opt TableOptions) error {
	bw := bufio.NewWriter(w)
	n := len(res.Columns)
	cells := make([][]string, 0, len(res.Rows)+1)
	head := make([]string, n)
	for i, c := range res.Columns {
		head[i] = c.Name
	}
	cells = append(cells, head)
	for _, r := range res.Rows {
		row := make([]string, n)
		for i, v := range r {
			// One line per row: control characters would break the grid.
			row[i] = strings.Map(func(c rune) rune {
				if c < ' ' || c == 0x7f {
					return ' '
				}
				return c
			}, Cell(v))
		}
		cells = append(cells, row)
	}
	widths := make([]int, n)
	for _, row := range cells {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	full := slices.Clone(widths)
	fit(widths, opt.Width)
	cutCells := !slices.Equal(full, widths)
	numeric := make([]bool, n)
	for i, c := range res.Columns {
		numeric[i] = isNumericType(c.Type)
	}
	for ri, row := range cells {
		for i, c := range row {
			c = cut(c, widths[i])
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i > 0 {
				bw.WriteString("  ")
			}
			if numeric[i] {
				bw.WriteString(pad + c)
			} else if i == n-1 {
				bw.WriteString(c)
			} else {
				bw.WriteString(c + pad)
			}
		}
		bw.WriteByte('\n')
		if ri == 0 {
			for i, wd := range widths {
				if i > 0 {
					bw.WriteString("  ")
				}
				bw.WriteString(strings.Repeat("─", wd))
			}
			bw.WriteByte('\n')
		}
	}
	more := ""
	if res.Truncated {
		more = " (truncated: more rows exist; raise --max-rows)"
	}
	if cutCells {
		more += fmt.Sprintf("; cells cut to %d columns, --wide or --format csv shows them whole", opt.Width)
	}
	fmt.Fprintf(bw, "(%d rows%s)\n", len(res.Rows), more)
	return bw.Flush()
}

// fit narrows the widest columns until the table (with two spaces between
// columns) fits in width. No column gets narrower than 8 runes or its
// header, whichever is less.
func fit(widths []int, width int) {
	if width <= 0 {
		return
	}
	total := func() int {
		t := 2 * (len(widths) - 1)
		for _, w := range widths {
			t += w
		}
		return t
	}
	for total() > width {
		wi := 0
		for i, w := range widths {
			if w > widths[wi] {
				wi = i
			}
		}
		if widths[wi] <= 8 {
			return
		}
		widths[wi]--
	}
}

func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func isNumericType(t string) bool {
	t = strings.TrimPrefix(strings.TrimSuffix(t, ")"), "Nullable(")
	return strings.HasPrefix(t, "UInt") || strings.HasPrefix(t, "Int") || strings.HasPrefix(t, "Float") || strings.HasPrefix(t, "Decimal")
}

// WriteCSV writes a header line and one line per row (RFC 4180).
func WriteCSV(w io.Writer, res *Result) error {
	cw := csv.NewWriter(w)
	head := make([]string, len(res.Columns))
	for i, c := range res.Columns {
		head[i] = c.Name
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	row := make([]string, len(res.Columns))
	for _, r := range res.Rows {
		for i, v := range r {
			row[i] = Cell(v)
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// jsonValue is v for encoding/json, with 64-bit integers as strings (as
// ClickHouse's JSON formats do: event ids do not fit a double) and times
// in RFC 3339.
func jsonValue(v any) any {
	switch v := v.(type) {
	case uint64:
		return strconv.FormatUint(v, 10)
	case int64:
		return strconv.FormatInt(v, 10)
	case []uint64:
		s := make([]string, len(v))
		for i, n := range v {
			s[i] = strconv.FormatUint(n, 10)
		}
		return s
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil
		}
		return jsonValue(rv.Elem().Interface())
	}
	return v
}

// appendObject encodes one row as a JSON object with keys in column order.
func appendObject(b []byte, cols []Column, row []any) ([]byte, error) {
	b = append(b, '{')
	for i, c := range cols {
		if i > 0 {
			b = append(b, ',')
		}
		k, _ := json.Marshal(c.Name)
		v, err := json.Marshal(jsonValue(row[i]))
		if err != nil {
			return b, fmt.Errorf("column %s: %w", c.Name, err)
		}
		b = append(append(append(b, k...), ':'), v...)
	}
	return append(b, '}'), nil
}

// WriteNDJSON writes one JSON object per row and line.
func WriteNDJSON(w io.Writer, res *Result) error {
	bw := bufio.NewWriter(w)
	var b []byte
	for _, r := range res.Rows {
		var err error
		if b, err = appendObject(b[:0], res.Columns, r); err != nil {
			return err
		}
		bw.Write(append(b, '\n'))
	}
	return bw.Flush()
}

// JSONMeta is what WriteJSON puts beside the rows.
type JSONMeta struct {
	Report string    `json:"report,omitempty"`
	From   time.Time `json:"from,omitzero"`
	To     time.Time `json:"to,omitzero"`
}

// WriteJSON writes one object: meta, columns with types, rows as objects,
// the row count and whether the rows were cut.
func WriteJSON(w io.Writer, res *Result, meta JSONMeta) error {
	b := []byte("{")
	if meta.Report != "" {
		b = append(b, `"report":`...)
		b, _ = appendJSON(b, meta.Report)
		b = append(b, ',')
	}
	if !meta.From.IsZero() {
		b = append(b, `"from":`...)
		b, _ = appendJSON(b, meta.From.UTC().Format(time.RFC3339))
		b = append(b, `,"to":`...)
		b, _ = appendJSON(b, meta.To.UTC().Format(time.RFC3339))
		b = append(b, ',')
	}
	b = append(b, `"columns":`...)
	b, _ = appendJSON(b, res.Columns)
	b = append(b, `,"rows":[`...)
	for i, r := range res.Rows {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendObject(append(b, "\n"...), res.Columns, r); err != nil {
			return err
		}
	}
	b = append(b, "],\"row_count\":"...)
	b = strconv.AppendInt(b, int64(len(res.Rows)), 10)
	b = append(b, ",\"truncated\":"...)
	b = strconv.AppendBool(b, res.Truncated)
	b = append(b, "}\n"...)
	_, err := w.Write(b)
	return err
}

func appendJSON(b []byte, v any) ([]byte, error) {
	j, err := json.Marshal(v)
	return append(b, j...), err
}
