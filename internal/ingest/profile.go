package ingest

import (
	"os"
	"runtime/pprof"
)

// CPUProfileEnv names a file to write a CPU profile of Run to, for
// diagnosing throughput (ingest bench passes the environment through).
const CPUProfileEnv = "INGEST_CPUPROFILE"

// startProfile starts the CPU profile CPUProfileEnv asks for and returns
// its stop function.
func startProfile() func() {
	path := os.Getenv(CPUProfileEnv)
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
