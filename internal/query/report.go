package query

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/reports"
)

// Report is one SQL file of reports/ with its documented header:
//
//	-- title: one line
//	-- purpose: what it answers (continues on following indented -- lines)
//	-- param: NAME TYPE [= DEFAULT]  description
//	-- findings: yes|no   (yes: every row is a finding; must be empty)
//	-- chart: SOURCE LABEL VALUE [AGG]   (bar chart in HTML; SOURCE is self or a report)
//
// A chart draws one bar per distinct LABEL: the rows with that label are
// folded by AGG (sum, the default; count of non-NULL values; avg; median;
// max), so a report grouped finer than its chart still draws each label once.
//
// Every report takes @from and @to (DateTime, [from, to)).
type Report struct {
	Name     string
	Title    string
	Purpose  string
	Params   []ReportParam
	Findings bool
	Charts   []ChartSpec
	SQL      string
}

// ReportParam is a documented parameter.
type ReportParam struct {
	Name, Type, Default, Doc string
}

// ChartSpec names the rows a chart draws: the report whose rows (self: this
// report's) give the labels and the values, and how the values of rows that
// share a label fold into one bar.
type ChartSpec struct {
	Source, Label, Value string
	Agg                  ChartAgg
}

// ChartAgg folds the values of the rows that share a chart label.
type ChartAgg string

// The folds a chart line may name.
const (
	AggSum    ChartAgg = "sum"
	AggCount  ChartAgg = "count" // rows whose value is not NULL
	AggAvg    ChartAgg = "avg"
	AggMedian ChartAgg = "median"
	AggMax    ChartAgg = "max"
)

var chartAggs = []ChartAgg{AggSum, AggCount, AggAvg, AggMedian, AggMax}

// Title says what the bars are: "value by label", "median value by label".
func (c ChartSpec) Title() string {
	if c.Agg == AggSum || c.Agg == "" {
		return c.Value + " by " + c.Label
	}
	return string(c.Agg) + " " + c.Value + " by " + c.Label
}

var (
	headerRE = regexp.MustCompile(`^--\s*(title|purpose|param|findings|chart):\s*(.*)$`)
	paramRE  = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)\s+([A-Za-z0-9]+)(?:\s*=\s*(\S+))?\s*(.*)$`)
)

// ParseReport reads a report file's header.
func ParseReport(name, src string) (*Report, error) {
	r := &Report{Name: name, SQL: src}
	last := ""
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrReport, name, fmt.Sprintf(format, a...))
	}
	for _, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "--") {
			break
		}
		m := headerRE.FindStringSubmatch(line)
		if m == nil {
			more := strings.TrimSpace(strings.TrimPrefix(line, "--"))
			if last == "purpose" && more != "" {
				r.Purpose += " " + more
			}
			continue
		}
		key, val := m[1], strings.TrimSpace(m[2])
		last = key
		switch key {
		case "title":
			r.Title = val
		case "purpose":
			r.Purpose = val
		case "param":
			p := paramRE.FindStringSubmatch(val)
			if p == nil {
				return nil, bad("param %q is not NAME TYPE [= DEFAULT] description", val)
			}
			if p[3] != "" {
				if _, err := Convert(p[2], p[3]); err != nil {
					return nil, bad("param %s default: %v", p[1], err)
				}
			}
			r.Params = append(r.Params, ReportParam{Name: p[1], Type: p[2], Default: p[3], Doc: p[4]})
		case "findings":
			switch val {
			case "yes":
				r.Findings = true
			case "no":
			default:
				return nil, bad("findings must be yes or no, not %q", val)
			}
		case "chart":
			f := strings.Fields(val)
			if len(f) != 3 && len(f) != 4 {
				return nil, bad("chart %q is not SOURCE LABEL VALUE [AGG]", val)
			}
			spec := ChartSpec{Source: f[0], Label: f[1], Value: f[2], Agg: AggSum}
			if len(f) == 4 {
				spec.Agg = ChartAgg(f[3])
				if !slices.Contains(chartAggs, spec.Agg) {
					return nil, bad("chart %q: AGG must be one of %v, not %q", val, chartAggs, f[3])
				}
			}
			r.Charts = append(r.Charts, spec)
		}
	}
	if r.Title == "" || r.Purpose == "" {
		return nil, bad("header needs a title and a purpose")
	}
	for _, want := range []string{"from", "to"} {
		if !slices.ContainsFunc(r.Params, func(p ReportParam) bool { return p.Name == want && p.Type == "DateTime" }) {
			return nil, bad("header must document param %s DateTime", want)
		}
	}
	if err := CheckReadOnly(src); err != nil {
		return nil, bad("%v", err)
	}
	return r, nil
}

// Reports returns every report in reports/, sorted by name.
func Reports() ([]*Report, error) {
	files, err := fs.Glob(reports.FS, "*.sql")
	if err != nil {
		return nil, err
	}
	var out []*Report
	for _, f := range files {
		src, err := fs.ReadFile(reports.FS, f)
		if err != nil {
			return nil, err
		}
		r, err := ParseReport(strings.TrimSuffix(path.Base(f), ".sql"), string(src))
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// FindReport returns the report called name.
func FindReport(name string) (*Report, error) {
	all, err := Reports()
	if err != nil {
		return nil, err
	}
	for _, r := range all {
		if r.Name == name {
			return r, nil
		}
	}
	names := make([]string, len(all))
	for i, r := range all {
		names[i] = r.Name
	}
	return nil, fmt.Errorf("%w: %q (known: %s)", ErrUnknownReport, name, strings.Join(names, ", "))
}

// Period is a report's time range, [From, To).
type Period struct{ From, To time.Time }

// Bind returns the report's parameters: from and to, the documented
// defaults, then extra (which overrides defaults). An extra parameter the
// report does not document is refused, and so is one whose value does not
// fit the documented type.
// extra holds raw name=value pairs (typed by the header, not inferred).
func (r *Report) Bind(p Period, extra map[string]string) ([]Param, error) {
	vals := map[string]any{"from": p.From.UTC(), "to": p.To.UTC()}
	types := map[string]string{}
	for _, rp := range r.Params {
		types[rp.Name] = rp.Type
		if rp.Default != "" {
			v, _ := Convert(rp.Type, rp.Default)
			vals[rp.Name] = v
		}
	}
	for name, raw := range extra {
		typ, ok := types[name]
		if !ok || name == "from" || name == "to" {
			return nil, fmt.Errorf("%w: report %s has no parameter %q (use --from/--to for the period)", ErrParam, r.Name, name)
		}
		v, err := Convert(typ, raw)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrParam, name, err)
		}
		vals[name] = v
	}
	var out []Param
	for _, rp := range r.Params {
		v, ok := vals[rp.Name]
		if !ok {
			return nil, fmt.Errorf("%w: report %s needs --param %s", ErrParam, r.Name, rp.Name)
		}
		out = append(out, Param{Name: rp.Name, Value: v})
	}
	return out, nil
}

// RunReport runs report r over p with extra parameters. Reports are ours,
// not the caller's, but they go through the same read-only check.
func (db *DB) RunReport(ctx context.Context, r *Report, p Period, extra map[string]string) (*Result, error) {
	params, err := r.Bind(p, extra)
	if err != nil {
		return nil, err
	}
	res, err := db.Query(ctx, r.SQL, params)
	if err != nil {
		return nil, fmt.Errorf("report %s: %w", r.Name, err)
	}
	return res, nil
}
