// Package benchreport runs every benchmark of the project and writes one
// table (ours, the peer's, the ratio, the target) to BENCHMARKS.md, with
// the machine it ran on.
//
// Go benchmarks are parsed from `go test -bench` output, several counts
// each, and summarised by their medians; the whole-system benchmarks
// (`ingest bench`, `detect bench`, `runner bench`, `query bench`) write
// their figures as JSON with -json FILE, read back here.
package benchreport
