package benchreport

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Results holds parsed `go test -bench` lines by benchmark name (without
// the -GOMAXPROCS suffix): one map of unit → value per counted run.
type Results map[string][]map[string]float64

// ParseGoBench reads `go test -bench` output. Lines that are not
// benchmark results are ignored; a result line that does not parse is an
// error naming the line.
func ParseGoBench(r io.Reader) (Results, error) {
	out := Results{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue // a log line that starts with a benchmark's name
		}
		if len(f)%2 != 0 {
			return nil, fmt.Errorf("benchreport: line %d: odd value/unit fields: %q", line, sc.Text())
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		m := map[string]float64{}
		for i := 2; i < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchreport: line %d: value %q: %v", line, f[i], err)
			}
			m[f[i+1]] = v
		}
		out[name] = append(out[name], m)
	}
	return out, sc.Err()
}

// Median returns the median of unit over bench's runs, and whether any
// run reported it.
func (r Results) Median(bench, unit string) (float64, bool) {
	var vs []float64
	for _, m := range r[bench] {
		if v, ok := m[unit]; ok {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return 0, false
	}
	return median(vs), true
}

func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
