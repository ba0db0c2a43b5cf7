package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentaudit/agentaudit/internal/events"
)

// A soak drives one long session and measures what stays behind: the live
// heap after a full collection at the start (after a warm-up) and at the
// end. Agents run for hours, so a per-call retention of a few kilobytes
// is a leak even when no single call shows it. The harness is path-neutral
// (SoakDriver makes one call); SoakMCP drives the MCP path, and a hook path
// soak plugs its own driver into Soak.

// SoakTargetGrowth is the live heap a 10,000-call session may add.
const SoakTargetGrowth = 1 << 20

// SoakOptions configure Soak.
type SoakOptions struct {
	Calls  int // measured calls (default 10,000)
	Warmup int // calls before the start figure (default 200)
	// Samples is how many times the live heap is read during the run
	// (default 10), so a report shows a trend, not two points.
	Samples int
	// ProfileDir, when set, receives heap profiles (pprof, inuse_space)
	// taken at the start and at the end: `go tool pprof -base start end`.
	ProfileDir string
}

// SoakDriver makes call i of a soak; an error counts, it does not stop the
// soak.
type SoakDriver func(ctx context.Context, i int) error

// HeapSample is the live heap after a collection, after Calls calls.
type HeapSample struct {
	Calls int
	Heap  uint64 // bytes
}

// SoakReport is what one soak measured.
type SoakReport struct {
	Path      string // what was driven, e.g. "mcp"
	Calls     int
	Errors    int
	FirstErr  error
	Duration  time.Duration
	HeapStart uint64 // live heap after the warm-up, bytes
	HeapEnd   uint64
	RSSStart  uint64 // resident set, bytes (0 where unknown)
	RSSEnd    uint64
	Samples   []HeapSample
}

// Growth is the live heap the measured calls added (negative: it shrank).
func (r *SoakReport) Growth() int64 { return int64(r.HeapEnd) - int64(r.HeapStart) }

// PerCall is Growth spread over the calls, in bytes.
func (r *SoakReport) PerCall() float64 { return float64(r.Growth()) / float64(max(r.Calls, 1)) }

// Met reports whether the growth is within SoakTargetGrowth.
func (r *SoakReport) Met() bool { return r.Growth() <= SoakTargetGrowth }

// Print writes the report, with the target and its verdict.
func (r *SoakReport) Print(w io.Writer) {
	mib := func(b uint64) string { return fmt.Sprintf("%.2f MiB", float64(b)/(1<<20)) }
	fmt.Fprintf(w, "soak %s: %d calls in one session, %d errors, %s (%.0f calls/s)\n", r.Path, r.Calls, r.Errors,
		r.Duration.Round(time.Millisecond), float64(r.Calls)/max(r.Duration.Seconds(), 1e-9))
	if r.FirstErr != nil {
		fmt.Fprintf(w, "  first error: %v\n", r.FirstErr)
	}
	for _, s := range r.Samples {
		fmt.Fprintf(w, "  after %6d calls: live heap %s\n", s.Calls, mib(s.Heap))
	}
	fmt.Fprintf(w, "live heap %s → %s (%+.1f KiB, %+.1f B/call); RSS %s → %s\n", mib(r.HeapStart), mib(r.HeapEnd),
		float64(r.Growth())/1024, r.PerCall(), mib(r.RSSStart), mib(r.RSSEnd))
	fmt.Fprintf(w, "live heap growth ≤ 1 MiB over the session (target): %s\n", verdict(r.Met()))
}

// Soak warms up, reads the live heap, makes o.Calls calls with call, and
// reads it again.
func Soak(ctx context.Context, path string, o SoakOptions, call SoakDriver) (*SoakReport, error) {
	if o.Calls <= 0 {
		o.Calls = 10000
	}
	if o.Warmup < 0 {
		o.Warmup = 0
	} else if o.Warmup == 0 {
		o.Warmup = 200
	}
	if o.Samples <= 0 {
		o.Samples = 10
	}
	if o.ProfileDir != "" {
		// Sample finely: a retention of a few hundred bytes a call is the
		// point of the profiles. Objects allocated from now on are seen.
		runtime.MemProfileRate = 512
	}
	rep := &SoakReport{Path: path, Calls: o.Calls}
	do := func(i int) {
		if err := call(ctx, i); err != nil {
			rep.Errors++
			if rep.FirstErr == nil {
				rep.FirstErr = fmt.Errorf("call %d: %w", i, err)
			}
		}
	}
	for i := range o.Warmup {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		do(i)
	}
	rep.Errors, rep.FirstErr = 0, nil
	rep.HeapStart, rep.RSSStart = LiveHeap(), rss()
	if err := heapProfile(o.ProfileDir, "start"); err != nil {
		return nil, err
	}
	every := max(o.Calls/o.Samples, 1)
	t0 := time.Now()
	for i := range o.Calls {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		do(o.Warmup + i)
		if (i+1)%every == 0 && i+1 < o.Calls {
			rep.Samples = append(rep.Samples, HeapSample{Calls: i + 1, Heap: LiveHeap()})
		}
	}
	rep.Duration = time.Since(t0)
	rep.HeapEnd, rep.RSSEnd = LiveHeap(), rss()
	rep.Samples = append(rep.Samples, HeapSample{Calls: o.Calls, Heap: rep.HeapEnd})
	if err := heapProfile(o.ProfileDir, "end"); err != nil {
		return nil, err
	}
	return rep, nil
}

// LiveHeap is the heap still reachable after a full collection, in bytes.
func LiveHeap() uint64 {
	runtime.GC()
	runtime.GC() // the second collection frees what the first one's finalizers released
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func heapProfile(dir, name string) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "heap-"+name+".pprof"))
	if err != nil {
		return err
	}
	runtime.GC()
	err = pprof.Lookup("heap").WriteTo(f, 0)
	return errors.Join(err, f.Close())
}

// rss is the process's resident set from /proc, 0 where unknown.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

// SoakMixedCall is the MCP soak's call i: shell, write_file, read_file
// and list_files in turn, as an agent mixes them, each with the _meta a
// real client sends (a call id, a progress token).
func SoakMixedCall(i int) *mcp.CallToolParams {
	p := soakCall(i)
	p.Meta = mcp.Meta{"callId": fmt.Sprintf("call_soak_%d", i), "progressToken": i}
	return p
}

func soakCall(i int) *mcp.CallToolParams {
	switch i % 4 {
	case 0:
		// A command line, so each call starts several programs, each
		// checked by the exec policy and recorded.
		return &mcp.CallToolParams{Name: ToolShell, Arguments: map[string]any{"command": fmt.Sprintf("ls -la soak | wc -l; echo call %d", i)}}
	case 1:
		return &mcp.CallToolParams{Name: ToolWriteFile, Arguments: map[string]any{
			"path": fmt.Sprintf("soak/f%d.txt", i%16), "content": fmt.Sprintf("call %d\n", i), "create_dirs": true}}
	case 2:
		return &mcp.CallToolParams{Name: ToolReadFile, Arguments: map[string]any{"path": fmt.Sprintf("soak/f%d.txt", (i-1)%16)}}
	}
	return &mcp.CallToolParams{Name: ToolListFiles, Arguments: map[string]any{"path": "soak"}}
}

// SoakMCPClient drives an MCP server through one client session with
// SoakMixedCall calls. A tool error counts as an error of the soak.
func SoakMCPClient(cs *mcp.ClientSession) SoakDriver {
	return func(ctx context.Context, i int) error {
		res, err := cs.CallTool(ctx, SoakMixedCall(i))
		if err != nil {
			return err
		}
		if res.IsError {
			var b strings.Builder
			for _, c := range res.Content {
				if tc, ok := c.(*mcp.TextContent); ok {
					b.WriteString(tc.Text)
				}
			}
			return fmt.Errorf("%s: %s", SoakMixedCall(i).Name, b.String())
		}
		return nil
	}
}

// SoakMCP runs a soak on the MCP path against the services of cfg: the
// runner's MCP server with its stdio framing over an in-process pipe, one
// MCP session (one sandbox, one chain), o.Calls mixed calls.
func SoakMCP(ctx context.Context, cfg Config, o SoakOptions, w io.Writer) (*SoakReport, error) {
	if cfg.Workspace == "" {
		return nil, fmt.Errorf("%w: --workspace: required", ErrConfig)
	}
	svc, err := Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer svc.Close(context.WithoutCancel(ctx))
	m := NewMCPServer(svc.Runner, cfg.Workspace)
	cs, stop, err := ConnectInProcess(ctx, m)
	if err != nil {
		return nil, err
	}
	rep, err := Soak(ctx, "mcp", o, SoakMCPClient(cs))
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	err = errors.Join(err, stop(cctx))
	if err != nil {
		return nil, err
	}
	if w != nil {
		rep.Print(w)
	}
	return rep, nil
}

// ConnectInProcess serves m on one end of an in-process pipe with the
// framing `runner serve --mcp stdio` uses, and connects an MCP client to
// the other. stop closes the client and ends the session.
func ConnectInProcess(ctx context.Context, m *MCPServer) (*mcp.ClientSession, func(context.Context) error, error) {
	cr, sw := io.Pipe() // server → client
	sr, cw := io.Pipe() // client → server
	done := make(chan error, 1)
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() { done <- m.serve(sctx, &frameTransport{r: sr, w: sw, limit: m.maxFrame}, time.Minute) }()
	cl := mcp.NewClient(&mcp.Implementation{Name: "agentaudit-soak", Version: Version}, nil)
	cs, err := cl.Connect(ctx, &mcp.IOTransport{Reader: cr, Writer: cw}, nil)
	if err != nil {
		cancel()
		cw.Close()
		return nil, nil, err
	}
	stop := func(ctx context.Context) error {
		err := cs.Close()
		cw.Close()
		select {
		case serr := <-done:
			err = errors.Join(err, serr)
		case <-ctx.Done():
			cancel()
			err = errors.Join(err, ctx.Err())
		}
		cancel()
		return errors.Join(err, m.Close(ctx, events.EndClientClosed))
	}
	return cs, stop, nil
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}
