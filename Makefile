# agentaudit: build, test and run against the services testenv/ starts.

# The Podman bindings compile only as a pure-Go remote client with these tags.
GOTAGS  := remote,containers_image_openpgp,exclude_graphdriver_btrfs,exclude_graphdriver_devicemapper
GO      := CGO_ENABLED=0 go
GOFLAGS_TEST := -tags $(GOTAGS) -count=1 -p 2 -timeout 30m
comma := ,

.PHONY: all demo build up down status test faults vet unit test-deps fuzz race bench bench-go bench-runner bench-soak bench-detect bench-ingest clean test-cluster faults-cluster bench-query-cluster

all: build

build:
	$(GO) build -tags $(GOTAGS) -o bin/ ./cmd/...

up:
	testenv/up

# The README's first command: services up, binaries built, one scripted agent
# session through the runner, approvals, detection, ingest and query.
# `make demo DEMO_FLAGS=--interactive` waits for a person in the inbox instead;
# `make demo DEMO_FLAGS=--agent=codex` (or =claude) then also runs that agent
# CLI itself in a sandbox (runner agent), driven by a scripted model.
demo: up build
	bin/demo $(DEMO_FLAGS)

down:
	testenv/down

status:
	testenv/status

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet -tags $(GOTAGS) ./...

# Node packages that tests drive as independent peers, pinned by their lock
# files. npm ci, not npm install: it installs exactly the lock and never
# rewrites it, so the tree stays clean; a lock that has fallen out of step
# with package.json (an entry missing, even for a package only another
# platform installs) fails here, naming the package, instead of being
# silently rewritten. A stamp of the lock's hash skips the install when
# nothing changed.
NODE_DIRS := schemas/check internal/approvals/web/e2e cmd/runner/testdata/inspector testenv/agents
test-deps:
	@for d in $(NODE_DIRS); do \
		want=$$(sha256sum $$d/package-lock.json | cut -d' ' -f1); \
		if [ "$$(cat $$d/node_modules/.lock.sha256 2>/dev/null)" != "$$want" ]; then \
			echo "npm ci --prefix $$d"; \
			npm ci --prefix $$d --no-audit --no-fund --loglevel=error >/dev/null || exit 1; \
			echo $$want > $$d/node_modules/.lock.sha256; \
		fi; \
	done

# Unit and integration tests, after testenv/up (so the README's test command
# works on a fresh machine). Integration tests read .testenv/env and fail,
# naming testenv/up, when a service is missing.
# Fault tests stop and restart shared services, so they run afterwards, one
# package at a time.
test: up vet test-deps
	$(GO) test $(GOFLAGS_TEST) -skip '^TestFault' ./...
	$(GO) test -tags $(GOTAGS),chdb -count=1 -run Chdb ./internal/store/
	$(GO) run -tags $(GOTAGS) ./cmd/detect test rules/
	$(call fault_phase,)

# The cluster suite (build tag cluster): migrations and sharding on the
# 2-shard x 2-replica ClickHouse 18.16 cluster that testenv/up --cluster
# starts beside the single-node services. Not part of make test; stop the
# cluster afterwards with testenv/down --cluster.
test-cluster:
	testenv/up --cluster
	$(GO) test -tags $(GOTAGS),cluster -count=1 -p 1 -timeout 20m -run 'Cluster' ./internal/store/ ./internal/testenv/ ./internal/ingest/ ./internal/query/

# make test's first phase under the race detector: unit and integration
# tests against the real services, fault tests left out. -race needs cgo;
# with GOTAGS every package builds with CGO_ENABLED=1, the Podman bindings
# too (go test -race -exec /bin/true ./... builds them all), so none is
# left out.
race: up test-deps
	CGO_ENABLED=1 go test -race -tags $(GOTAGS) -count=1 -p 2 -timeout 30m -skip '^TestFault' ./...

# The fault tests alone (they also run at the end of make test): services
# stopped and restarted under load, one package at a time.
faults: up test-deps
	$(call fault_phase,-v)

# fault_phase runs every TestFault… with AGENTAUDIT_FAULT_REPORT naming a
# fresh report under .testenv/artifacts/, then prints the per-case table
# (produced, stored, dead-lettered, lost, duplicated) to stdout and to
# .testenv/artifacts/faults.md. The exit status is go test's.
define fault_phase
$(call fault_suite,faults,$(GOTAGS),$(1) -run '^TestFault' ./...)
endef

# fault_suite NAME,TAGS,ARGS runs go test ARGS with AGENTAUDIT_FAULT_REPORT
# naming .testenv/artifacts/NAME-<time>.jsonl and prints the table to
# stdout and .testenv/artifacts/NAME.md.
define fault_suite
@mkdir -p .testenv/artifacts; \
report=$(CURDIR)/.testenv/artifacts/$(1)-$$(date -u +%Y%m%dT%H%M%SZ).jsonl; : > $$report; \
AGENTAUDIT_FAULT_REPORT=$$report $(GO) test -tags $(2) -count=1 -p 1 -timeout 30m $(3); status=$$?; \
echo; echo "Fault suite ($$report):"; \
$(GO) run -tags $(GOTAGS) ./internal/faults/cmd/faulttable -o .testenv/artifacts/$(1).md $$report || status=1; \
exit $$status
endef

# The cluster fault cases (internal/faults/cluster_test.go, build tag
# cluster): a broker, a ClickHouse replica, a whole shard, ZooKeeper, an
# ingester and a detector SIGKILLed under load on the cluster of
# testenv/up --cluster, with the same table as make faults, in
# .testenv/artifacts/faults-cluster.md. Stop the cluster afterwards with
# testenv/down --cluster.
faults-cluster: test-deps
	testenv/up --cluster
	$(call fault_suite,faults-cluster,$(GOTAGS)$(comma)cluster,-v -run 'TestFaultCluster' ./internal/faults/)

unit:
	$(GO) test -tags $(GOTAGS) -count=1 -short ./...

# Every fuzz target in the module (each func Fuzz… in a _test.go), one at a
# time for FUZZTIME each: go test fuzzes one target of one package per run.
# Stops at the first failure and names it; go test has written the failing
# input under that package's testdata/fuzz/, where plain go test replays it.
# A target that go test does not see (a build tag left out of GOTAGS) fails
# too, rather than passing without being fuzzed.
# FUZZMINIMIZETIME bounds the minimizing of each new input: at Go's default
# (60s) a target with large inputs (FuzzVerifyChain's are a whole session)
# spends its whole FUZZTIME minimizing one of them.
# A failure that is only "context deadline exceeded", with no failing input
# written, is Go 1.26's fuzz coordinator racing its own -fuzztime deadline
# (go.dev/issue/75804, fixed in Go 1.27), not a finding: that target runs
# again, at most twice.
FUZZTIME ?= 20s
FUZZMINIMIZETIME ?= 5s
fuzz:
	@targets=$$(git ls-files -co --exclude-standard -- '*_test.go' | grep -v '/testdata/' | \
		xargs grep -Ho '^func Fuzz[[:alnum:]_]*(' | \
		sed -E 's#^(.*)/[^/]+:func (Fuzz[[:alnum:]_]*)\($$#./\1 \2#' | sort); \
	n=$$(echo "$$targets" | grep -c .); i=0; log=$$(mktemp); trap 'rm -f $$log' EXIT; \
	echo "$$targets" | { while read -r pkg name; do \
		i=$$((i+1)); echo "fuzz $$i/$$n: $$pkg $$name for $(FUZZTIME)"; ok=; \
		for try in 1 2 3; do \
			$(GO) test -tags $(GOTAGS) -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) \
				-fuzzminimizetime $(FUZZMINIMIZETIME) $$pkg >$$log 2>&1 && \
				! grep -q 'no fuzz tests to fuzz' $$log && { ok=1; break; }; \
			[ $$try -lt 3 ] && grep -q 'context deadline exceeded' $$log && \
				! grep -q 'Failing input written to' $$log || break; \
			echo "  context deadline exceeded, no failing input: go.dev/issue/75804; again"; \
		done; \
		[ -n "$$ok" ] || { cat $$log; echo "make fuzz: $$name in $$pkg FAILED"; exit 1; }; \
	done; echo "make fuzz: $$n targets passed, $(FUZZTIME) each"; }

# Every benchmark of the project, each with its peer and target, written as
# one table to BENCHMARKS.md (raw output in .testenv/artifacts/bench/).
bench: up build
	set -a; . .testenv/env; set +a; bin/benchreport -out BENCHMARKS.md

# Every Go benchmark once, without the table.
bench-go:
	$(GO) test -tags $(GOTAGS) -run '^$$' -bench . -benchmem ./...

# Whole-system benchmarks: each prints the peer's figure from the same run.
bench-ingest: build
	set -a; . .testenv/env; set +a; bin/ingest bench -n $${N:-1000000} -runs $${RUNS:-1}

# query bench on the 2-shard x 2-replica cluster of testenv/up --cluster:
# the bench database installed ON CLUSTER and generated through the
# Distributed tables (sharded by session), then every report and verify as
# the read-only account through them; N events (default 10M), RUNS timings
# each, figures also in .testenv/artifacts/bench/query-cluster.json. Add
# FRESH=--fresh to regenerate. Stop the cluster afterwards with
# testenv/down --cluster.
bench-query-cluster: build
	testenv/up --cluster
	@mkdir -p .testenv/artifacts/bench
	set -a; . .testenv/env; . .testenv/cluster.env; set +a; \
	bin/query bench --addr $${CLUSTER_CLICKHOUSE_ADDRS%%,*} --clickhouse-cluster $$CLUSTER_CLICKHOUSE_NAME \
		-n $${N:-10000000} --runs $${RUNS:-5} $(FRESH) --json .testenv/artifacts/bench/query-cluster.json

bench-detect: build
	set -a; . .testenv/env; set +a; bin/detect bench --rate 20000 --duration 30s

bench-runner:
	set -a; . .testenv/env; set +a; $(GO) run -tags $(GOTAGS) ./cmd/runner bench -n 200

# Long sessions: the runner's live heap at the start and the end of CALLS
# calls on the MCP path and on runner agent's hook path (target: growth
# ≤ 1 MiB over 10,000 each).
bench-soak:
	set -a; . .testenv/env; set +a; $(GO) run -tags $(GOTAGS) ./cmd/runner soak -calls $${CALLS:-10000}

clean:
	rm -rf bin
