package demo

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// progress prints the demo's steps with the time since the start.
type progress struct {
	mu      sync.Mutex
	w       io.Writer
	start   time.Time
	timings []Timing
}

// Timing is how long one step took.
type Timing struct {
	Step     string
	Duration time.Duration
}

func (p *progress) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}

// line prints a detail line under the current step.
func (p *progress) line(format string, args ...any) {
	p.printf("          %s\n", fmt.Sprintf(format, args...))
}

// step starts a step; its done prints the outcome and records the time.
func (p *progress) step(title string) *stepTimer {
	p.printf("[%6.1fs] ▶ %s\n", time.Since(p.start).Seconds(), title)
	return &stepTimer{p: p, title: title, start: time.Now()}
}

type stepTimer struct {
	p     *progress
	title string
	start time.Time
}

func (s *stepTimer) done(format string, args ...any) {
	d := time.Since(s.start)
	s.p.mu.Lock()
	s.p.timings = append(s.p.timings, Timing{Step: s.title, Duration: d})
	s.p.mu.Unlock()
	s.p.printf("[%6.1fs] ✓ %s (%s)\n", time.Since(s.p.start).Seconds(), fmt.Sprintf(format, args...), round(d))
}

func (s *stepTimer) fail(err error) error {
	s.p.printf("[%6.1fs] ✗ %s: %v\n", time.Since(s.p.start).Seconds(), s.title, err)
	return err
}

func round(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

func createLog(path string) (*os.File, error) {
	return os.Create(path)
}
