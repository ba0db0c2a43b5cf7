package benchreport

import (
	"context"
	"fmt"
)

// otlpRows: the agent telemetry receiver's work per OTLP log record, in
// both encodings the agents send.
func otlpRows(ctx context.Context, r *runner) ([]Row, error) {
	res, err := r.goBench(ctx, "otlp.txt", "./internal/otlp/", "DecodeMapValidate", "-cpu", "1")
	if err != nil {
		return nil, err
	}
	pb, err := need(res, "BenchmarkDecodeMapValidate/protobuf", "records/cpu-s")
	if err != nil {
		return nil, err
	}
	js, err := need(res, "BenchmarkDecodeMapValidate/json", "records/cpu-s")
	if err != nil {
		return nil, err
	}
	pbNS, _ := res.Median("BenchmarkDecodeMapValidate/protobuf", "cpu-ns/record")
	jsNS, _ := res.Median("BenchmarkDecodeMapValidate/json", "cpu-ns/record")
	return []Row{
		{
			What:    "decode + map + validate agents' OTLP log records (recorded Codex and Claude Code sessions, protobuf; each event stamped on its chain)",
			Ours:    fmt.Sprintf("%s records/cpu-s (%s/record)", count(pb), dur(pbNS)),
			Peer:    fmt.Sprintf("the same in OTLP JSON (protojson): %s records/cpu-s (%s/record)", count(js), dur(jsNS)),
			Ratio:   fmt.Sprintf("%.2f× JSON", pb/js),
			Target:  "≥ 50k records/s per core",
			Verdict: verdict(pb >= 50_000),
			Command: goTestCmd + "DecodeMapValidate -cpu 1 ./internal/otlp/",
		},
	}, nil
}
