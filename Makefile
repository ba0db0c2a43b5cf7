# agentaudit: build, test and run against the services testenv/ starts.

# The Podman bindings compile only as a pure-Go remote client with these tags.
GOTAGS  := remote,containers_image_openpgp,exclude_graphdriver_btrfs,exclude_graphdriver_devicemapper
GO      := CGO_ENABLED=0 go
GOFLAGS_TEST := -tags $(GOTAGS) -count=1 -p 2 -timeout 30m

.PHONY: all demo build up down status test faults vet unit test-deps fuzz bench bench-go bench-runner bench-detect bench-ingest clean

all: build

build:
	$(GO) build -tags $(GOTAGS) -o bin/ ./cmd/...

up:
	testenv/up

# The README's first command: services up, binaries built, one scripted agent
# session through the runner, approvals, detection, ingest and query.
# `make demo DEMO_FLAGS=--interactive` waits for a person in the inbox instead.
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
# files. npm install (not ci) because it honours the lock yet tolerates
# optional, platform-only packages the registry here does not serve; a stamp
# of the lock's hash skips the install when nothing changed.
NODE_DIRS := schemas/check internal/approvals/web/e2e cmd/runner/testdata/inspector
test-deps:
	@for d in $(NODE_DIRS); do \
		want=$$(sha256sum $$d/package-lock.json | cut -d' ' -f1); \
		if [ "$$(cat $$d/node_modules/.lock.sha256 2>/dev/null)" != "$$want" ]; then \
			echo "npm install --prefix $$d"; \
			npm install --prefix $$d --no-audit --no-fund --loglevel=error >/dev/null || exit 1; \
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

# The fault tests alone (they also run at the end of make test): services
# stopped and restarted under load, one package at a time.
faults: up test-deps
	$(call fault_phase,-v)

# fault_phase runs every TestFault… with AGENTAUDIT_FAULT_REPORT naming a
# fresh report under .testenv/artifacts/, then prints the per-case table
# (produced, stored, dead-lettered, lost, duplicated) to stdout and to
# .testenv/artifacts/faults.md. The exit status is go test's.
define fault_phase
@mkdir -p .testenv/artifacts; \
report=$(CURDIR)/.testenv/artifacts/faults-$$(date -u +%Y%m%dT%H%M%SZ).jsonl; : > $$report; \
AGENTAUDIT_FAULT_REPORT=$$report $(GO) test -tags $(GOTAGS) -count=1 -p 1 -timeout 30m $(1) -run '^TestFault' ./...; status=$$?; \
echo; echo "Fault suite ($$report):"; \
$(GO) run -tags $(GOTAGS) ./internal/faults/cmd/faulttable -o .testenv/artifacts/faults.md $$report || status=1; \
exit $$status
endef

unit:
	$(GO) test -tags $(GOTAGS) -count=1 -short ./...

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

bench-detect: build
	set -a; . .testenv/env; set +a; bin/detect bench --rate 20000 --duration 30s

bench-runner:
	set -a; . .testenv/env; set +a; $(GO) run -tags $(GOTAGS) ./cmd/runner bench -n 200

clean:
	rm -rf bin
