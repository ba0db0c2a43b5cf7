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
// Bodies are decoded with the OpenTelemetry project's generated Go types,
// go.opentelemetry.io/proto/otlp (logs/v1, common/v1, resource/v1), with
// google.golang.org/protobuf's proto and protojson. ExportLogsServiceRequest
// has LogsData's wire form and JSON, so the request decodes into
// logs/v1.LogsData and the collector/logs/v1 package (which links gRPC and
// grpc-gateway) is not imported; the two-field response is written with
// protowire. The collector's pdata module (plog's JSON and protobuf
// unmarshalers) was the alternative. Measured on 2026-12-06 with a program
// that only decodes a logs request: empty main 1.82 MB; proto/otlp +
// protojson 5.92 MB; pdata v1.71.0 4.17 MB (pdata carries its own
// generated codec instead of protobuf-go's runtime). But protobuf-go is
// already linked into this project's binaries, so in ingest the whole
// feature (this package, internal/policy, the OTLP types) added 1.52 MB
// (25.96 → 27.48 MB), while pdata would add six modules (json-iterator,
// reflect2 at a newer pseudo-version than the project pins, multierr,
// go-version, the collector's featuregate, pdata) and tie the project to
// the collector's release train. proto/otlp adds one module; the one
// thing pdata would do for us is read OTLP JSON's hex trace and span ids,
// handled in normaliseIDs.
package otlp
