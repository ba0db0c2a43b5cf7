package events

import (
	"encoding/json"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// benchEvent is the canonical wire form of a typical tool_call.requested.
func benchEvent(b testing.TB) (*Envelope, []byte) {
	b.Helper()
	for _, ne := range exampleChain(b) {
		if ne.name == "tool_call.requested.push" {
			wire, err := Marshal(ne.env)
			if err != nil {
				b.Fatal(err)
			}
			return ne.env, wire
		}
	}
	b.Fatal("no tool_call.requested.push example")
	return nil, nil
}

// cpuClock measures the benchmark goroutine's own CPU time (Linux thread
// CPU time), because on a machine shared with other work wall-clock ns/op
// mostly measures the wait for a core. Background GC work on other threads
// is not included; allocs/op shows its driver.
type cpuClock struct{ start time.Duration }

func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_THREAD, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() *cpuClock {
	runtime.LockOSThread()
	return &cpuClock{start: threadCPU()}
}

// report adds events/s (wall) and cpu-ns/op with the events/s it implies.
func (c *cpuClock) report(b *testing.B) {
	cpu := threadCPU() - c.start
	runtime.UnlockOSThread()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "events/cpu-s")
	}
}

// BenchmarkDecodeValidate: bytes → validated *Envelope (fast validator).
func BenchmarkDecodeValidate(b *testing.B) {
	_, wire := benchEvent(b)
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	clk := startCPU()
	for b.Loop() {
		if _, err := Decode(wire); err != nil {
			b.Fatal(err)
		}
	}
	clk.report(b)
}

// BenchmarkDecodeGeneral: the same, on the general path alone (tree, then
// schema walk), which is what events not in canonical form take.
func BenchmarkDecodeGeneral(b *testing.B) {
	_, wire := benchEvent(b)
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	clk := startCPU()
	for b.Loop() {
		if _, err := decodeGeneral(wire); err != nil {
			b.Fatal(err)
		}
	}
	clk.report(b)
}

// BenchmarkValidateReference: the same event through jsonschema/v5, for
// comparison.
func BenchmarkValidateReference(b *testing.B) {
	_, wire := benchEvent(b)
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	clk := startCPU()
	for b.Loop() {
		if err := ValidateReference(wire); err != nil {
			b.Fatal(err)
		}
	}
	clk.report(b)
}

// BenchmarkStdlibUnmarshal is a yardstick from the same run: encoding/json
// decoding the same bytes into a map, with no validation at all.
func BenchmarkStdlibUnmarshal(b *testing.B) {
	_, wire := benchEvent(b)
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	clk := startCPU()
	for b.Loop() {
		var m map[string]any
		if err := json.Unmarshal(wire, &m); err != nil {
			b.Fatal(err)
		}
	}
	clk.report(b)
}

// BenchmarkEncodeHash: canonical encoding + sha256 of a stamped event, as
// Chain.Stamp does it, without validation.
func BenchmarkEncodeHash(b *testing.B) {
	env, wire := benchEvent(b)
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	var buf, scratch []byte
	var err error
	clk := startCPU()
	for b.Loop() {
		if buf, scratch, err = appendHash(buf, scratch, env); err != nil {
			b.Fatal(err)
		}
	}
	clk.report(b)
}

// BenchmarkStamp: Chain.StampAppend in full (encode, hash, validate, wire
// bytes): what a producer pays per event before the send.
func BenchmarkStamp(b *testing.B) {
	env, _ := benchEvent(b)
	c := NewChain(env.Key())
	b.ReportAllocs()
	var wire []byte
	var err error
	clk := startCPU()
	for b.Loop() {
		if wire, err = c.StampAppend(wire[:0], env); err != nil {
			b.Fatal(err)
		}
	}
	clk.report(b)
}

func BenchmarkNewID(b *testing.B) {
	g, err := NewIDGen(1)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	clk := startCPU()
	for b.Loop() {
		g.Next()
	}
	clk.report(b)
}

func BenchmarkNewIDString(b *testing.B) {
	g, err := NewIDGen(1, WithClock(time.Now))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	clk := startCPU()
	for b.Loop() {
		_ = g.Next().String()
	}
	clk.report(b)
}

// The stages of Decode on their own, to see where its time goes: parsing
// into the tree, the schema checks over it, and building the Envelope.

func BenchmarkDecodeParse(b *testing.B) {
	_, wire := benchEvent(b)
	t := &jtree{}
	b.ReportAllocs()
	clk := startCPU()
	for b.Loop() {
		if err := t.parse(wire); err != nil {
			b.Fatal(err.msg)
		}
	}
	clk.report(b)
}

func BenchmarkDecodeCheck(b *testing.B) {
	_, wire := benchEvent(b)
	reg, err := registry()
	if err != nil {
		b.Fatal(err)
	}
	t := &jtree{}
	s, verr := reg.dispatch(t, wire)
	if verr != nil {
		b.Fatal(verr)
	}
	b.ReportAllocs()
	clk := startCPU()
	for b.Loop() {
		t.v.t, t.v.path = t, t.v.path[:0]
		if verr := t.v.check(s, 0); verr != nil {
			b.Fatal(verr)
		}
	}
	clk.report(b)
}

func BenchmarkDecodeEnvelope(b *testing.B) {
	_, wire := benchEvent(b)
	reg, err := registry()
	if err != nil {
		b.Fatal(err)
	}
	t := &jtree{}
	if verr := reg.validate(t, wire); verr != nil {
		b.Fatal(verr)
	}
	b.ReportAllocs()
	clk := startCPU()
	for b.Loop() {
		if _, err := t.envelope(reg); err != nil {
			b.Fatal(err)
		}
	}
	clk.report(b)
}
