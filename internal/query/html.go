package query

import (
	"fmt"
	"html/template"
	"io"
	"slices"
	"strconv"
	"time"
)

// Chart is a bar chart: one bar per label.
type Chart struct {
	Title  string
	Labels []string
	Values []float64
}

// MaxBars bounds a chart; the rest of the rows stay in the table.
const MaxBars = 20

// ChartFrom draws column spec.Value of res against column spec.Label: one
// bar per distinct label, in the order the labels first appear, folding
// the values of the rows that share a label by spec.Agg. It fails when a
// column is missing.
func ChartFrom(title string, res *Result, spec ChartSpec) (Chart, error) {
	li, vi := res.Index(spec.Label), res.Index(spec.Value)
	if li < 0 || vi < 0 {
		return Chart{}, fmt.Errorf("%w: chart %q needs columns %s and %s", ErrReport, title, spec.Label, spec.Value)
	}
	var labels []string
	vals := map[string][]float64{}
	for _, row := range res.Rows {
		l := Cell(row[li])
		if t, ok := row[li].(time.Time); ok && t.Equal(t.Truncate(24*time.Hour)) {
			l = t.Format(time.DateOnly)
		}
		if _, seen := vals[l]; !seen {
			if len(labels) == MaxBars {
				continue
			}
			labels = append(labels, l)
			vals[l] = []float64{}
		}
		cell := Cell(row[vi])
		if row[vi] == nil || cell == "NULL" {
			continue // a pending approval's time to decide: nothing to fold
		}
		if spec.Agg == AggCount {
			vals[l] = append(vals[l], 1)
			continue
		}
		v, err := strconv.ParseFloat(cell, 64)
		if err != nil {
			continue
		}
		vals[l] = append(vals[l], v)
	}
	c := Chart{Title: title}
	for _, l := range labels {
		vs := vals[l]
		if len(vs) == 0 && spec.Agg != AggCount {
			continue
		}
		c.Labels = append(c.Labels, cut(l, 40))
		c.Values = append(c.Values, fold(spec.Agg, vs))
	}
	return c, nil
}

// fold reduces the values of one chart label; vs is empty only for count.
func fold(agg ChartAgg, vs []float64) float64 {
	switch agg {
	case AggCount:
		return float64(len(vs))
	case AggMax:
		return slices.Max(vs)
	case AggAvg:
		return total(vs) / float64(len(vs))
	case AggMedian:
		s := slices.Clone(vs)
		slices.Sort(s)
		n := len(s)
		if n%2 == 1 {
			return s[n/2]
		}
		return (s[n/2-1] + s[n/2]) / 2
	}
	return total(vs)
}

func total(vs []float64) float64 {
	t := 0.0
	for _, v := range vs {
		t += v
	}
	return t
}

// Page is one self-contained HTML document: no scripts, no fonts, no
// network; CSS and SVG are inline.
type Page struct {
	Title     string
	Purpose   string
	Period    Period // zero: none
	SQL       string
	Params    []Param
	Findings  bool // rows are findings: the page says whether there are any
	Result    *Result
	Charts    []Chart
	Generated time.Time

	reportName string
}

// WriteHTML writes p.
func WriteHTML(w io.Writer, p Page) error {
	type bar struct {
		Y, W       float64
		Label, Val string
	}
	type chart struct {
		Title         string
		Height, Width int
		Bars          []bar
	}
	var charts []chart
	for _, c := range p.Charts {
		maxV := 0.0
		for _, v := range c.Values {
			maxV = max(maxV, v)
		}
		ch := chart{Title: c.Title, Width: 580, Height: 24*len(c.Values) + 10}
		for i, v := range c.Values {
			w := 0.0
			if maxV > 0 {
				w = v / maxV * 280
			}
			ch.Bars = append(ch.Bars, bar{Y: float64(24*i + 5), W: w, Label: c.Labels[i], Val: strconv.FormatFloat(v, 'f', -1, 64)})
		}
		charts = append(charts, ch)
	}
	rows := make([][]string, len(p.Result.Rows))
	for i, r := range p.Result.Rows {
		rows[i] = make([]string, len(r))
		for j, v := range r {
			rows[i][j] = Cell(v)
		}
	}
	params := make([]string, 0, len(p.Params))
	for _, pr := range p.Params {
		params = append(params, "@"+pr.Name+" = "+Cell(pr.Value))
	}
	numeric := make([]bool, len(p.Result.Columns))
	for i, c := range p.Result.Columns {
		numeric[i] = isNumericType(c.Type)
	}
	return pageTmpl.Execute(w, map[string]any{
		"P": p, "Rows": rows, "Charts": charts, "Params": params, "Numeric": numeric,
		"HasPeriod": !p.Period.From.IsZero(),
		"From":      p.Period.From.UTC().Format(time.RFC3339), "To": p.Period.To.UTC().Format(time.RFC3339),
		"Generated": p.Generated.UTC().Format(time.RFC3339),
	})
}

var pageTmpl = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.P.Title}}</title>
<style>
body { font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px 32px; color: #1b1f24; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 8px; }
.purpose { color: #444; max-width: 980px; }
.meta { color: #555; margin: 8px 0 0; }
.meta b { color: #1b1f24; }
.verdict { display: inline-block; padding: 4px 10px; border-radius: 4px; font-weight: 600; margin-top: 10px; }
.ok { background: #dff3e3; color: #14532d; }
.bad { background: #fde2e1; color: #7f1d1d; }
table { border-collapse: collapse; font-size: 12.5px; margin-top: 4px; }
th, td { border-bottom: 1px solid #e3e6ea; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f6f8; position: sticky; top: 0; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafbfc; }
pre { background: #f6f8fa; border: 1px solid #e3e6ea; padding: 10px; font-size: 12px; overflow-x: auto; white-space: pre-wrap; }
.charts { display: flex; flex-wrap: wrap; gap: 24px; }
figure { margin: 8px 0; }
svg text { font: 12px -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; fill: #1b1f24; }
svg .bar { fill: #3b82c4; }
.empty { color: #555; font-style: italic; }
</style>
</head>
<body>
<h1>{{.P.Title}}</h1>
{{if .P.Purpose}}<p class="purpose">{{.P.Purpose}}</p>{{end}}
<p class="meta">{{if .HasPeriod}}Period <b>{{.From}}</b> to <b>{{.To}}</b> (end excluded) · {{end}}{{len .Rows}} rows{{if .P.Result.Truncated}} (truncated){{end}} · generated {{.Generated}}</p>
{{if .P.Findings}}{{if .Rows}}<div class="verdict bad">{{len .Rows}} findings</div>{{else}}<div class="verdict ok">No findings</div>{{end}}{{end}}
{{if .Charts}}<div class="charts">{{range .Charts}}
<figure>
<figcaption><b>{{.Title}}</b></figcaption>
<svg xmlns="http://www.w3.org/2000/svg" width="{{.Width}}" height="{{.Height}}" role="img" aria-label="{{.Title}}">
{{range .Bars}}<text x="230" y="{{.Y}}" dy="13" text-anchor="end">{{.Label}}</text>
<rect class="bar" x="240" y="{{.Y}}" width="{{.W}}" height="18" rx="2"></rect>
<text x="{{.W}}" dx="246" y="{{.Y}}" dy="13">{{.Val}}</text>
{{end}}</svg>
</figure>{{end}}
</div>{{end}}
<h2>Results</h2>
{{if .Rows}}<table>
<thead><tr>{{range .P.Result.Columns}}<th>{{.Name}}</th>{{end}}</tr></thead>
<tbody>
{{range .Rows}}<tr>{{range $i, $c := .}}<td{{if index $.Numeric $i}} class="n"{{end}}>{{$c}}</td>{{end}}</tr>
{{end}}</tbody>
</table>{{else}}<p class="empty">No rows.</p>{{end}}
<h2>Query</h2>
{{if .Params}}<p class="meta">{{range .Params}}<code>{{.}}</code> {{end}}</p>{{end}}
<pre>{{.P.SQL}}</pre>
</body>
</html>
`))
