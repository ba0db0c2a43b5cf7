package otlp

import (
	"runtime"
	"syscall"
	"testing"
	"time"

	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/agentaudit/agentaudit/internal/events"
)

func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_THREAD, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDecodeMapValidate measures the receiver's work per log record:
// decode an export request of both agents' recorded sessions (22 records),
// map every record, validate each event against its schema before it is
// stamped (the mapper's check) and stamp it on its chain (canonical
// encoding, sha256, the producer's validation). The figure is records per
// second of the goroutine's own CPU time (records/cpu-s), as events'
// benchmarks measure, because wall time on a shared machine mostly
// measures the wait for a core.
func BenchmarkDecodeMapValidate(b *testing.B) {
	for _, enc := range []string{EncodingProtobuf, EncodingJSON} {
		b.Run(enc, func(b *testing.B) {
			ext := map[string]string{EncodingProtobuf: ".pb", EncodingJSON: ".json"}[enc]
			bodies := [][]byte{fixture(b, "codex"+ext), fixture(b, "claude"+ext)}
			m := testMapper(b)
			chains := map[events.ChainKey]*events.Chain{}
			records := 0
			b.ReportAllocs()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			start := threadCPU()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, body := range bodies {
					ld, err := DecodeLogs(body, enc)
					if err != nil {
						b.Fatal(err)
					}
					envs, res := m.Map(ld, Tenant{Name: "acme"})
					records += res.Records
					for _, e := range envs {
						e.RunnerID = "otlp-bench"
						c := chains[e.Key()]
						if c == nil {
							c = events.NewChain(e.Key())
							chains[e.Key()] = c
						}
						if err := c.Stamp(e); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			b.StopTimer()
			cpu := threadCPU() - start
			b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
			if cpu > 0 {
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(records), "cpu-ns/record")
				b.ReportMetric(float64(records)/cpu.Seconds(), "records/cpu-s")
			}
		})
	}
}

// BenchmarkDecode measures decoding alone, with the decoder the receiver
// uses (pdata) beside the one it used before (protobuf-go's proto and
// protojson into go.opentelemetry.io/proto/otlp's types), on the same
// bodies, in the goroutine's own CPU time as above.
func BenchmarkDecode(b *testing.B) {
	for _, enc := range []string{EncodingProtobuf, EncodingJSON} {
		ext := map[string]string{EncodingProtobuf: ".pb", EncodingJSON: ".json"}[enc]
		bodies := [][]byte{fixture(b, "codex"+ext), fixture(b, "claude"+ext)}
		records := 0
		for _, body := range bodies {
			ld, err := DecodeLogs(body, enc)
			if err != nil {
				b.Fatal(err)
			}
			records += ld.LogRecordCount()
		}
		decoders := map[string]func([]byte) error{
			"pdata": func(body []byte) error { _, err := DecodeLogs(body, enc); return err },
			"protobuf-go": func(body []byte) error {
				if enc == EncodingJSON {
					return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(body, &logspb.LogsData{})
				}
				return proto.Unmarshal(body, &logspb.LogsData{})
			},
		}
		for _, name := range []string{"pdata", "protobuf-go"} {
			decode := decoders[name]
			b.Run(enc+"/"+name, func(b *testing.B) {
				b.ReportAllocs()
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				start := threadCPU()
				for b.Loop() {
					for _, body := range bodies {
						if err := decode(body); err != nil {
							b.Fatal(err)
						}
					}
				}
				if cpu := threadCPU() - start; cpu > 0 {
					b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*records), "cpu-ns/record")
				}
			})
		}
	}
}
