// Package otlp receives agents' own OpenTelemetry (OTLP/HTTP logs from
// Codex and Claude Code) and records it as agent.* audit events.
//
// The receiver is an http.Handler: POST /v1/logs in protobuf or JSON,
// gzipped or not, with or without Content-Length (Claude Code sends
// chunked bodies). Bodies are bounded before and after gunzip (413); a
// body that is not an export request is answered 400 and counted; a
// content type other than application/x-protobuf or application/json is
// 415. Each log record of a known agent becomes one event (Mapper);
// records of unknown agents or that would not validate are rejected with
// OTLP partial success (rejectedLogRecords and the first reason), never
// dropped silently. Two kinds of record are kept differently: Codex's
// codex.sse_event records other than the one carrying a completed
// response's token counts (one per stream event) are skipped and counted
// (Stats.Skipped), and a known agent's plain log line without an event
// name (Codex's "flushing OTEL metrics") becomes agent.other named
// codex.log. The answer is sent only once every event is recorded
// (acknowledged by Kafka or spooled); when they cannot be, it is 503 so
// the exporter retries. Events of one request are recorded chain by chain,
// so a retry after a 503 may record the chains that did get through a
// second time, under new event ids: at least once, never silently lost.
// /v1/traces and /v1/metrics are accepted and counted, not kept.
//
// # Mounting it per session (runner agent)
//
// The runner serves the handler on the session's Unix socket, so the
// agent inside the sandbox reaches it without a network, with the
// session's tenant and session id fixed and its own producer, so the
// agent's events join the session's chain:
//
//	h := otlp.NewHandler(producer, otlp.Fixed(otlp.Tenant{
//		Name: tenant, SessionID: sessionID, Operator: operator, Text: otlp.TextHash,
//	}), otlp.NewMapper(ids,
//		otlp.WithJudge(otlp.PolicyJudge{Policy: pol}),
//		otlp.WithCallLinker(calls), // agent call id → runner tool_call_id
//	))
//	mux.Handle("/v1/", h) // on the session socket's HTTP server
//
// and points the agent's exporter at it: Codex `[otel] exporter = {
// otlp-http = { endpoint = "http://…/v1/logs", protocol = "json" } }`,
// Claude Code `CLAUDE_CODE_ENABLE_TELEMETRY=1 OTEL_LOGS_EXPORTER=otlp
// OTEL_EXPORTER_OTLP_PROTOCOL=http/json OTEL_EXPORTER_OTLP_ENDPOINT=…`.
// The CallLinker answers from the tool_call.requested events the runner
// wrote with client_meta.call_id / tool_use_id; without one the join is
// still one SQL join on the store's agent_call_id column.
//
// Standalone (a developer's laptop), Serve runs the same handler on a
// loopback TCP port with a bearer token per tenant (TokenFile), each
// agent conversation its own session: `ingest otlp`.
//
// The fixtures in testdata are one session of each agent built from the
// attribute lists measured in AGENT-CLIS.md; testdata/real holds what the
// real CLIs sent (TestRecordRealAgents, build tag realagents, runs them
// against the scripted model of internal/agenttest), which
// TestRealRecordings maps.
//
// # Which OpenTelemetry types
//
// Bodies are decoded with the OpenTelemetry collector's pdata module
// (go.opentelemetry.io/collector/pdata, pinned in go.mod): plog's
// ProtoUnmarshaler and JSONUnmarshaler, and the mapper reads plog and
// pcommon types. ExportLogsServiceRequest has LogsData's wire form and
// JSON, which is what they read; OTLP JSON's hex trace and span ids are
// pdata's own rule, so nothing is rewritten after decoding. Until
// 2026-12-06 the package used the generated types of
// go.opentelemetry.io/proto/otlp with protobuf-go's proto and protojson;
// protojson was about 60% of the receiver's cost for OTLP JSON (18k
// records/cpu-s where the target is 50k). pdata carries its own
// generated codecs, with no reflection: on the recorded sessions its JSON
// decoding takes about a fifth of protojson's CPU time and its protobuf
// decoding less than half of protobuf-go's (BenchmarkDecode prints both).
// The price: pdata brings json-iterator, reflect2, multierr, go-version
// and the collector's featuregate, raises the module's gRPC and genproto
// requirements, and ties this package to the collector's release train.
// Two inputs it reads differently from protojson: ids in JSON must be hex
// (protojson took base64 too) and a protobuf trace or span id of the
// wrong length is malformed (400) rather than ignored; it does not check
// that protobuf strings are UTF-8, which the mapper makes valid (the fuzz
// targets hold it to valid events). The tests still build their fixtures
// with proto/otlp's types, so testdata is encoded by the other codec.
package otlp
