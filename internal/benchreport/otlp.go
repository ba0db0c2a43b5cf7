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
			What:    "decode (pdata) + map + validate agents' OTLP log records (recorded Codex and Claude Code sessions; each event stamped on its chain), protobuf and JSON",
			Ours:    fmt.Sprintf("protobuf %s records/cpu-s (%s/record); JSON %s records/cpu-s (%s/record)", count(pb), dur(pbNS), count(js), dur(jsNS)),
			Peer:    "—",
			Ratio:   fmt.Sprintf("JSON at %.2f× protobuf", js/pb),
			Target:  "≥ 50k records/s per core, both encodings",
			Verdict: verdict(pb >= 50_000 && js >= 50_000),
			Command: goTestCmd + "DecodeMapValidate -cpu 1 ./internal/otlp/",
		},
	}, nil
}
