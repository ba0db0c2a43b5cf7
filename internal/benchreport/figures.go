package benchreport

import (
	"encoding/json"
	"fmt"
	"os"
)

// Figures are a whole-system benchmark's results by name, as written by
// its -json flag.
type Figures map[string]float64

// WriteFigures writes figs to path as JSON.
func WriteFigures(path string, figs Figures) error {
	b, err := json.MarshalIndent(figs, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadFigures reads a file WriteFigures wrote.
func ReadFigures(path string) (Figures, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var figs Figures
	if err := json.Unmarshal(b, &figs); err != nil {
		return nil, fmt.Errorf("benchreport: %s: %w", path, err)
	}
	return figs, nil
}

// need returns the named figures or an error naming the first missing.
func (f Figures) need(names ...string) ([]float64, error) {
	out := make([]float64, len(names))
	for i, n := range names {
		v, ok := f[n]
		if !ok {
			return nil, fmt.Errorf("benchreport: figure %q missing", n)
		}
		out[i] = v
	}
	return out, nil
}
