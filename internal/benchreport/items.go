package benchreport

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// items lists every benchmark in the order of the table.
func items() []item {
	return []item{
		{"events", eventsRows},
		{"otlp", otlpRows},
		{"ingest", ingestRows},
		{"runner", runnerRows},
		{"interception-floor", interceptionFloorRows},
		{"runner-soak", runnerSoakRows},
		{"runner-hook", runnerHookRows},
		{"sandbox", sandboxRows},
		{"netpol", netpolRows},
		{"approvals", approvalsRows},
		{"detect-engine", detectEngineRows},
		{"detect-latency", detectLatencyRows},
		{"query", queryRows},
		{"query-cluster", queryClusterRows},
		{"policy", policyRows},
	}
}

const goTestCmd = "go test -run '^$' -bench "

func eventsRows(ctx context.Context, r *runner) ([]Row, error) {
	res, err := r.goBench(ctx, "events.txt", "./internal/events/", "DecodeValidate|DecodeIntoValidate|ValidateReference|StdlibUnmarshal|EncodeHash", "-cpu", "1")
	if err != nil {
		return nil, err
	}
	emit, err := r.goBench(ctx, "eventlog.txt", "./internal/eventlog/", "Emit$", "-cpu", "1")
	if err != nil {
		return nil, err
	}
	ours, err := need(res, "BenchmarkDecodeValidate", "events/cpu-s")
	if err != nil {
		return nil, err
	}
	ns, _ := res.Median("BenchmarkDecodeValidate", "cpu-ns/op")
	allocs, _ := res.Median("BenchmarkDecodeValidate", "allocs/op")
	into, err := need(res, "BenchmarkDecodeIntoValidate", "events/cpu-s")
	if err != nil {
		return nil, err
	}
	intoNS, _ := res.Median("BenchmarkDecodeIntoValidate", "cpu-ns/op")
	intoAllocs, _ := res.Median("BenchmarkDecodeIntoValidate", "allocs/op")
	std, err := need(res, "BenchmarkStdlibUnmarshal", "events/cpu-s")
	if err != nil {
		return nil, err
	}
	ref, err := need(res, "BenchmarkValidateReference", "events/cpu-s")
	if err != nil {
		return nil, err
	}
	hash, err := need(res, "BenchmarkEncodeHash", "ns/op")
	if err != nil {
		return nil, err
	}
	p50, err := need(emit, "BenchmarkEmit", "p50-ms")
	if err != nil {
		return nil, err
	}
	p99, err := need(emit, "BenchmarkEmit", "p99-ms")
	if err != nil {
		return nil, err
	}
	return []Row{
		{
			What:    "decode + validate a typical `tool_call.requested` from its Kafka bytes",
			Ours:    fmt.Sprintf("%s events/cpu-s (%s/op, %.0f allocs)", count(ours), dur(ns), allocs),
			Peer:    fmt.Sprintf("`encoding/json` Unmarshal, no validation: %s/cpu-s; jsonschema/v5: %s/cpu-s", count(std), count(ref)),
			Ratio:   fmt.Sprintf("%.2f× json, %.0f× jsonschema", ours/std, ours/ref),
			Target:  "≥ 200k events/s per core",
			Verdict: verdict(ours >= 200_000),
			Command: goTestCmd + "DecodeValidate -cpu 1 ./internal/events/",
		},
		{
			What:    "the same, as ingest decodes: `DecodeInto` a reused envelope whose strings point into the record",
			Ours:    fmt.Sprintf("%s events/cpu-s (%s/op, %.0f allocs)", count(into), dur(intoNS), intoAllocs),
			Peer:    fmt.Sprintf("`encoding/json` Unmarshal, no validation: %s/cpu-s", count(std)),
			Ratio:   fmt.Sprintf("%.2f× json", into/std),
			Target:  "≥ 200k events/s per core",
			Verdict: verdict(into >= 200_000),
			Command: goTestCmd + "DecodeIntoValidate -cpu 1 ./internal/events/",
		},
		{
			What:    "canonical encode + sha256 of the same event",
			Ours:    dur(hash) + "/op",
			Verdict: NoTarget,
			Command: goTestCmd + "EncodeHash -cpu 1 ./internal/events/",
		},
		{
			What:    "`Emit` (audit-before-act: acks=all, one at a time) to the local broker",
			Ours:    fmt.Sprintf("p50 %s, p99 %s", ms(p50), ms(p99)),
			Verdict: NoTarget,
			Command: goTestCmd + "'Emit$' ./internal/eventlog/",
		},
	}, nil
}

func ingestRows(ctx context.Context, r *runner) ([]Row, error) {
	n := r.cfg.IngestN
	f, err := r.figures(ctx, "ingest", "ingest", "bench", "-n", strconv.Itoa(n), "-runs", "3")
	if err != nil {
		return nil, err
	}
	v, err := f.need("ingest_events_per_s", "peer_events_per_s", "ingest_peak_rss_mib", "ratio")
	if err != nil {
		return nil, err
	}
	ratio := v[3] // the median of the per-run ratios
	return []Row{{
		What:    fmt.Sprintf("Kafka → ClickHouse load of %s events of every type, validating each, until every row is visible (median of 3)", count(float64(n))),
		Ours:    fmt.Sprintf("%s events/s, peak RSS %.0f MiB", count(v[0]), v[2]),
		Peer:    fmt.Sprintf("`kcat -C -e \\| clickhouse-client … FORMAT JSONEachRow`: %s events/s", count(v[1])),
		Ratio:   fmt.Sprintf("%.2f×", ratio),
		Target:  "≥ 1.0× the peer, peak RSS ≤ 256 MiB",
		Verdict: verdict(ratio >= 1 && v[2] <= 256),
		Command: fmt.Sprintf("make bench-ingest N=%d RUNS=3", n),
	}}, nil
}

func runnerRows(ctx context.Context, r *runner) ([]Row, error) {
	f, err := r.figures(ctx, "runner", "runner", "bench", "-n", "200")
	if err != nil {
		return nil, err
	}
	v, err := f.need("runner_p50_ms", "runner_p99_ms", "bindings_p50_ms", "podman_exec_p50_ms", "overhead_p50_ms", "session_start_p50_ms",
		"podman_path_p50_ms", "loop_traced_p50_ms", "loop_untraced_p50_ms", "loop_trace_price_pct", "loop_events_p50_ms",
		"git_traced_p50_ms", "git_untraced_p50_ms", "git_trace_price_pct", "loop_ptrace_price_pct", "git_ptrace_price_pct",
		"par_traced_p50_ms", "par_untraced_p50_ms", "par_trace_price_pct")
	if err != nil {
		return nil, err
	}
	return []Row{
		{
			What: "tool call through the runner (`shell true`: policy + 2 acknowledged events + the sandbox supervisor runs it, exec traced and checked), 200 calls",
			Ours: fmt.Sprintf("p50 %s, p99 %s; runner's own cost p50 %s", ms(v[0]), ms(v[1]), ms(v[4])),
			Peer: fmt.Sprintf("the old podman exec path p50 %s; raw bindings exec p50 %s; `podman exec` p50 %s",
				ms(v[6]), ms(v[2]), ms(v[3])),
			Ratio:   fmt.Sprintf("%.1f× faster than the old path, %.1f× raw bindings", v[6]/v[0], v[2]/v[0]),
			Target:  "p50 ≤ 5 ms",
			Verdict: verdict(v[0] <= 5),
			Command: "make bench-runner",
		},
		{
			What:   "price of tracing: 2,000 execs from a shell loop, every exec stopped, checked by the policy and recorded as `process.exec` (median of 5)",
			Ours:   fmt.Sprintf("traced %s; events all acknowledged %s after the call", ms(v[7]), ms(v[10])),
			Peer:   fmt.Sprintf("untraced, same supervisor: %s; ptrace alone (followed, nothing checked) %+.1f%%", ms(v[8]), v[14]),
			Ratio:  fmt.Sprintf("%+.1f%% wall time", v[9]),
			Target: "≤ +20%", Verdict: verdict(v[9] <= 20), Command: "make bench-runner",
		},
		{
			What:  "price of tracing: 200 × `git status` in a repository (median of 5)",
			Ours:  "traced " + ms(v[11]),
			Peer:  fmt.Sprintf("untraced, same supervisor: %s; ptrace alone %+.1f%%", ms(v[12]), v[15]),
			Ratio: fmt.Sprintf("%+.1f%% wall time", v[13]), Target: "≤ +20%", Verdict: verdict(v[13] <= 20),
			Command: "make bench-runner",
		},
		{
			What: "price of tracing on parallel work: 2 CPU-bound shells at once, which exec little " +
				"(the tracer keeps processes that exec on its own CPU and gives them their CPUs back when they stop exec'ing; median of 5)",
			Ours:    "traced " + ms(v[16]),
			Peer:    "untraced, same supervisor: " + ms(v[17]),
			Ratio:   fmt.Sprintf("%+.1f%% wall time", v[18]),
			Verdict: NoTarget,
			Command: "make bench-runner",
		},
		{
			What:    "runner session start (container create + start + supervisor hello + `session.started`)",
			Ours:    "p50 " + ms(v[5]),
			Verdict: NoTarget,
			Command: "make bench-runner",
		},
	}, nil
}

// runnerSoakRows is one long session on the MCP path: the live heap the
// runner keeps after 10,000 calls. Soaks of other paths (the agent hooks)
// add their figures under their own prefix.
func runnerSoakRows(ctx context.Context, r *runner) ([]Row, error) {
	f, err := r.figures(ctx, "runner-soak", "runner", "soak", "-calls", "10000")
	if err != nil && f == nil {
		return nil, err
	}
	var rows []Row
	what := map[string]string{
		"mcp":  "one `runner serve --mcp` session (shell, write_file, read_file, list_files",
		"hook": "one `runner agent` session's hooks (PreToolUse and PostToolUse of the agent's shell tool",
	}
	for _, path := range []string{"mcp", "hook"} {
		v, ferr := f.need(path+"_calls", path+"_errors", path+"_heap_start_mib", path+"_heap_end_mib", path+"_growth_kib",
			path+"_per_call_b", path+"_rss_start_mib", path+"_rss_end_mib", path+"_calls_per_s")
		if ferr != nil {
			return nil, ferr
		}
		rows = append(rows, Row{
			What: fmt.Sprintf("soak: %s calls in %s; %s errors, %.0f calls/s)",
				count(v[0]), what[path], count(v[1]), v[8]),
			Ours:    fmt.Sprintf("live heap %.2f → %.2f MiB (%+.0f KiB, %+.1f B/call); RSS %.1f → %.1f MiB", v[2], v[3], v[4], v[5], v[6], v[7]),
			Target:  "live heap growth ≤ 1 MiB",
			Verdict: verdict(v[1] == 0 && v[4] <= 1024),
			Command: "make bench-soak",
		})
	}
	return rows, nil
}

// interceptionFloorRows is what stopping a shell loop's execs costs on
// this machine before the supervisor does any work: the context the price
// of tracing is read in.
func interceptionFloorRows(ctx context.Context, r *runner) ([]Row, error) {
	res, err := r.goBench(ctx, "interception-floor.txt", "./internal/supervisor/", "InterceptionFloor", "-benchtime", "20x")
	if err != nil {
		return nil, err
	}
	base, err := need(res, "BenchmarkInterceptionFloor/untraced", "ns/exec")
	if err != nil {
		return nil, err
	}
	notify, err := need(res, "BenchmarkInterceptionFloor/notify", "ns/exec")
	if err != nil {
		return nil, err
	}
	follow, err := need(res, "BenchmarkInterceptionFloor/ptrace-follow", "ns/exec")
	if err != nil {
		return nil, err
	}
	oneCPU, err := need(res, "BenchmarkInterceptionFloor/ptrace-follow-one-cpu", "ns/exec")
	if err != nil {
		return nil, err
	}
	return []Row{{
		What: "the floor of exec interception on this machine, on the host: a loop of `/bin/true` with every execve handed to a seccomp " +
			"notification answered \"continue\" at once (one round trip per exec, no ptrace, nothing read), and followed by ptrace and let go at once, " +
			"left to the scheduler and kept on the tracer's CPU (as the supervisor keeps a call that execs)",
		Ours: fmt.Sprintf("notification %+.1f%%, ptrace follow %+.1f%%, on the tracer's CPU %+.1f%% wall time",
			100*(notify/base-1), 100*(follow/base-1), 100*(oneCPU/base-1)),
		Peer:    fmt.Sprintf("untraced %s per exec", dur(base)),
		Verdict: NoTarget,
		Command: goTestCmd + "InterceptionFloor -benchtime 20x ./internal/supervisor/",
	}}, nil
}

// runnerHookRows is an agent's PreToolUse through the hook socket to its
// answer, both events acknowledged by Kafka.
func runnerHookRows(ctx context.Context, r *runner) ([]Row, error) {
	res, err := r.goBench(ctx, "runner-hook.txt", "./internal/runner/", "HookRoundTrip", "-benchtime", "500x")
	if err != nil {
		return nil, err
	}
	p50, err := need(res, "BenchmarkHookRoundTrip", "p50-ms")
	if err != nil {
		return nil, err
	}
	p99, _ := res.Median("BenchmarkHookRoundTrip", "p99-ms")
	sb, err := r.goBench(ctx, "runner-hook-sandbox.txt", "./internal/runner/", "HookFromSandbox", "-benchtime", "500x")
	if err != nil {
		return nil, err
	}
	call, err := need(sb, "BenchmarkHookFromSandbox", "p50-ms")
	if err != nil {
		return nil, err
	}
	callP99, _ := sb.Median("BenchmarkHookFromSandbox", "p99-ms")
	proc, _ := sb.Median("BenchmarkHookFromSandbox", "process-p50-ms")
	return []Row{{
		What:    "agent hook round trip (`runner agent`: PreToolUse → answer, `tool_call.requested` and `policy.decision` acknowledged by Kafka, no approval), 500 calls",
		Ours:    fmt.Sprintf("p50 %s, p99 %s", ms(p50), ms(p99)),
		Target:  "p50 ≤ 5 ms, p99 ≤ 20 ms",
		Verdict: verdict(p50 <= 5 && p99 <= 20),
		Command: goTestCmd + "HookRoundTrip -benchtime 500x ./internal/runner/",
	}, {
		What: "what an agent waits for per tool call from its hook: the hook started in the sandbox by `/bin/sh -c` as both CLIs start it " +
			"(each exec traced and checked), then the round trip above, 500 calls",
		Ours:    fmt.Sprintf("p50 %s, p99 %s; starting the hook process alone p50 %s", ms(call), ms(callP99), ms(proc)),
		Verdict: NoTarget,
		Command: goTestCmd + "HookFromSandbox -benchtime 500x ./internal/runner/",
	}}, nil
}

func sandboxRows(ctx context.Context, r *runner) ([]Row, error) {
	res, err := r.goBench(ctx, "sandbox.txt", "./internal/sandbox/", "SessionStart", "-benchtime", "10x")
	if err != nil {
		return nil, err
	}
	p50, err := need(res, "BenchmarkSessionStart", "p50-ms")
	if err != nil {
		return nil, err
	}
	p99, _ := res.Median("BenchmarkSessionStart", "p99-ms")
	return []Row{{
		What:    "sandbox container create + start (rootless Podman, overlay)",
		Ours:    fmt.Sprintf("p50 %s, p99 %s", ms(p50), ms(p99)),
		Verdict: NoTarget,
		Command: goTestCmd + "SessionStart -benchtime 10x ./internal/sandbox/",
	}}, nil
}

func netpolRows(ctx context.Context, r *runner) ([]Row, error) {
	setup, err := r.goBench(ctx, "netpol-setup.txt", "./internal/netpol/", "EgressSetup|Decide", "-benchtime", "1000x")
	if err != nil {
		return nil, err
	}
	tput, err := r.goBench(ctx, "netpol-throughput.txt", "./internal/netpol/", "EgressThroughput", "-benchtime", "3x")
	if err != nil {
		return nil, err
	}
	added, err := need(setup, "BenchmarkEgressSetup", "tls-bridge-added-p50-µs")
	if err != nil {
		return nil, err
	}
	proxyAdded, _ := setup.Median("BenchmarkEgressSetup", "tls-added-p50-µs")
	direct, _ := setup.Median("BenchmarkEgressSetup", "tls-direct-p50-µs")
	bridge, err := need(tput, "BenchmarkEgressThroughput", "bridge-%-of-direct")
	if err != nil {
		return nil, err
	}
	proxy, _ := tput.Median("BenchmarkEgressThroughput", "proxy-%-of-direct")
	relay, _ := tput.Median("BenchmarkEgressThroughput", "bridge-relay-%-of-direct")
	dMB, _ := tput.Median("BenchmarkEgressThroughput", "direct-MB/s")
	bMB, _ := tput.Median("BenchmarkEgressThroughput", "bridge+proxy-MB/s")
	return []Row{
		{
			What:    "egress TLS connection set-up through the sandbox's path (bridge + proxy) on loopback, audit ack excluded",
			Ours:    fmt.Sprintf("+%s p50 (proxy alone +%s)", dur(added*1000), dur(proxyAdded*1000)),
			Peer:    "direct TLS set-up p50 " + dur(direct*1000),
			Target:  "≤ 1 ms added p50",
			Verdict: verdict(added <= 1000),
			Command: goTestCmd + "EgressSetup -benchtime 1000x ./internal/netpol/",
		},
		{
			What:    "1 GiB download through the sandbox's egress path (bridge passes the socket, proxy relays) on loopback",
			Ours:    fmt.Sprintf("%.0f MB/s (proxy alone %.0f%% of direct; a relaying bridge %.0f%%)", bMB, proxy, relay),
			Peer:    fmt.Sprintf("direct TCP %.0f MB/s", dMB),
			Ratio:   fmt.Sprintf("%.0f%%", bridge),
			Target:  "≥ 80% of direct",
			Verdict: verdict(bridge >= 80),
			Command: goTestCmd + "EgressThroughput -benchtime 3x ./internal/netpol/",
		},
	}, nil
}

var latencyLine = regexp.MustCompile(`p50 (\S+) p99 (\S+) max (\S+)`)

func approvalsRows(ctx context.Context, r *runner) ([]Row, error) {
	out, err := r.command(ctx, "approvals.txt", "go", "test", "-tags", r.cfg.GoTags, "-count", "1", "-run", "^TestDecisionLatency$", "-v", "./internal/approvals/")
	if err != nil {
		return nil, err
	}
	m := latencyLine.FindSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("TestDecisionLatency: no latency line in its output")
	}
	var d [3]time.Duration
	for i := range d {
		if d[i], err = time.ParseDuration(string(m[i+1])); err != nil {
			return nil, fmt.Errorf("TestDecisionLatency: %v", err)
		}
	}
	return []Row{{
		What:    "approval decision submitted → waiting runner verified it and resumed (200 requests)",
		Ours:    fmt.Sprintf("p50 %s, p99 %s, max %s", d[0], d[1], d[2]),
		Target:  "p99 ≤ 500 ms",
		Verdict: verdict(d[1] <= 500*time.Millisecond),
		Command: "go test -run TestDecisionLatency -v ./internal/approvals/",
	}}, nil
}

func detectEngineRows(ctx context.Context, r *runner) ([]Row, error) {
	res, err := r.goBench(ctx, "detect-engine.txt", "./internal/detect/", "Engine$", "-cpu", "1")
	if err != nil {
		return nil, err
	}
	v, err := need(res, "BenchmarkEngine", "events/cpu-s")
	if err != nil {
		return nil, err
	}
	return []Row{{
		What:    "detection engine, shipped rule pack, one core",
		Ours:    count(v) + " events/cpu-s",
		Target:  "≥ 100k events/s per core",
		Verdict: verdict(v >= 100_000),
		Command: goTestCmd + "'Engine$' -cpu 1 ./internal/detect/",
	}}, nil
}

func detectLatencyRows(ctx context.Context, r *runner) ([]Row, error) {
	f, err := r.figures(ctx, "detect", "detect", "bench", "--rate", "20000", "--duration", "30s")
	if err != nil {
		return nil, err
	}
	v, err := f.need("alert_p50_ms", "alert_p99_ms", "broker_p50_ms", "broker_p99_ms", "triggers", "alerts")
	if err != nil {
		return nil, err
	}
	return []Row{{
		What:    fmt.Sprintf("event produced → alert emitted at a steady 20k events/s on the real broker (%.0f triggers, %.0f alerted)", v[4], v[5]),
		Ours:    fmt.Sprintf("p50 %s, p99 %s", ms(v[0]), ms(v[1])),
		Peer:    fmt.Sprintf("a plain consumer of the same events in the same run: p50 %s, p99 %s", ms(v[2]), ms(v[3])),
		Target:  "p99 ≤ 250 ms, every trigger alerted once",
		Verdict: verdict(v[1] <= 250 && v[4] == v[5]),
		Command: "make bench-detect",
	}}, nil
}

func queryRows(ctx context.Context, r *runner) ([]Row, error) {
	// One database per size, reused by later runs (generating 10M events
	// takes minutes).
	db := "agentaudit_bench_" + strconv.Itoa(r.cfg.QueryN)
	if r.cfg.QueryN%1_000_000 == 0 {
		db = "agentaudit_bench_" + strconv.Itoa(r.cfg.QueryN/1_000_000) + "m"
	}
	f, err := r.figures(ctx, "query", "query", "bench", "-n", strconv.Itoa(r.cfg.QueryN), "-database", db)
	if err != nil && f["failed_reports"] == 0 {
		return nil, err
	}
	return queryFigureRows(f, "", "", fmt.Sprintf("go run ./cmd/query bench -n %d -database %s", r.cfg.QueryN, db))
}

// queryClusterRows are the same figures on the 2-shard × 2-replica
// cluster, from the last `make bench-query-cluster` (its JSON beside the
// other raw output). make bench does not start the cluster: its eight
// processes would share the two cores with the single node's services
// and every other benchmark. The row says when that run was.
func queryClusterRows(_ context.Context, r *runner) ([]Row, error) {
	path := filepath.Join(r.cfg.Raw, "query-cluster.json")
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("no cluster figures (%w): run make bench-query-cluster", err)
	}
	f, err := ReadFigures(path)
	if err != nil {
		return nil, err
	}
	on := fmt.Sprintf(", on %.0f shards × %.0f replicas (18.16)", f["shards"], f["replicas"])
	when := "; measured by `make bench-query-cluster` at " + st.ModTime().UTC().Format("2006-01-02 15:04 UTC")
	return queryFigureRows(f, on+" through the Distributed tables"+when,
		on+", each shard's local table read on its first replica"+when, "make bench-query-cluster RUNS=5")
}

// queryFigureRows turns `query bench` figures into the reports' row and
// verify's; reportsLabel and verifyLabel follow their descriptions.
func queryFigureRows(f Figures, reportsLabel, verifyLabel, command string) ([]Row, error) {
	// Reports that failed are counted in the row (and fail its verdict).
	v, err := f.need("events", "days", "slowest_day_ms", "slowest_period_ms", "failed_reports", "verify_day_ms")
	if err != nil {
		return nil, err
	}
	// Each report's median over the whole period, slowest first.
	var per []string
	for name := range f {
		if n, ok := strings.CutPrefix(name, "report_period_ms."); ok {
			per = append(per, n)
		}
	}
	slices.SortFunc(per, func(a, b string) int {
		return cmp.Or(cmp.Compare(f["report_period_ms."+b], f["report_period_ms."+a]), cmp.Compare(a, b))
	})
	for i, n := range per {
		per[i] = n + " " + ms(f["report_period_ms."+n])
	}
	rows := []Row{{
		What: fmt.Sprintf("compliance reports over %s events in %.0f days (every shipped report, median of 5)%s", count(v[0]), v[1], reportsLabel),
		Ours: fmt.Sprintf("slowest report over one day %s, over all %.0f days %s (%.0f failed); `verify` of one day %s; over %.0f days: %s",
			ms(v[2]), v[1], ms(v[3]), v[4], ms(v[5]), v[1], strings.Join(per, ", ")),
		Target:  "≤ 2 s per report",
		Verdict: verdict(v[2] <= 2000 && v[3] <= 2000 && v[4] == 0),
		Command: command,
	}}
	if w, err := f.need("verify_day_events", "verify_day_heap_mib", "verify_period_ms", "verify_period_events", "verify_period_heap_mib"); err == nil {
		day, period := w[0]/(v[5]/1000), w[3]/(w[2]/1000)
		rows = append(rows, Row{
			What: fmt.Sprintf("`query verify`, streaming whole sessions in batches (one day: %s events, median of 5; all %.0f days: %s events, once)%s", count(w[0]), v[1], count(w[3]), verifyLabel),
			Ours: fmt.Sprintf("one day %.0fk events/s, peak Go heap %.0f MiB; %.0f days %.0fk events/s, peak Go heap %.0f MiB",
				day/1000, w[1], v[1], period/1000, w[4]),
			Target:  "≥ 200k events/s, memory bounded",
			Verdict: verdict(day >= 200_000 && period >= 200_000),
			Command: command,
		})
	}
	return rows, nil
}

func policyRows(ctx context.Context, r *runner) ([]Row, error) {
	res, err := r.goBench(ctx, "policy.txt", "./internal/policy/", "Evaluate", "-cpu", "1")
	if err != nil {
		return nil, err
	}
	lo, hi := 0.0, 0.0
	for name := range res {
		v, ok := res.Median(name, "ns/op")
		if !ok {
			continue
		}
		if lo == 0 || v < lo {
			lo = v
		}
		hi = max(hi, v)
	}
	return []Row{{
		What:    fmt.Sprintf("tool-call policy evaluation (%d shapes, from a bare command to a chained `bash -lc`)", len(res)),
		Ours:    fmt.Sprintf("%s – %s/op", dur(lo), dur(hi)),
		Verdict: NoTarget,
		Command: goTestCmd + "Evaluate -cpu 1 ./internal/policy/",
	}}, nil
}

// count formats a count: 212k, 1.25M.
func count(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 2, 64) + "M"
	case v >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', 0, 64) + "k"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// dur formats nanoseconds.
func dur(ns float64) string {
	return time.Duration(ns).Round(significant(time.Duration(ns))).String()
}

func significant(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return 10 * time.Millisecond
	case d >= time.Millisecond:
		return 10 * time.Microsecond
	case d >= time.Microsecond:
		return 10 * time.Nanosecond
	}
	return 1
}

// ms formats milliseconds.
func ms(v float64) string { return dur(v * 1e6) }
