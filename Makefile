# sipvigil build, test and benchmark entry points.
#
# The two set-up commands of the README:
#   make run    - build and run the proxy on its embedded default config
#   make test   - install test peers (SIPp) if missing, then run every test
#
# make test is exactly what .ci/run calls.

GO        ?= go
BIN       := bin/sipvigil
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
STATICCHECK_VERSION := v0.8.2

.PHONY: all build run test deps test-unit test-e2e lint generate check-generated bench bench-capacity bench-reorder bench-suspend bench-ebpf bench-trace jaeger dashboards clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/sipvigil

run: build
	./$(BIN) serve

# deps installs the real peers the tests drive. It needs root (CI runs as
# root); elsewhere it uses sudo when available.
deps:
	@./.ci/deps.sh

test: deps lint check-generated jaeger test-unit test-e2e

# Unit tests, with the race detector, for everything but the end-to-end
# package (which runs real SIPp load and is timed by SIPp, not by -race).
test-unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /test/e2e)

test-e2e: $(JAEGER)
	$(GO) test -count=1 -timeout 15m -v ./test/e2e/

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	@command -v staticcheck >/dev/null 2>&1 || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" staticcheck ./...

# Regenerate the eBPF objects and their Go bindings (needs clang/llvm).
generate:
	$(GO) generate ./bpf/

# Fail when the committed bpf2go output does not match bpf/sipcap.c.
check-generated:
	STRICT=1 ./bpf/check_generated.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./proxy/...

# Highest call rate with 0 failed calls over 10 s, SIPp uac/uas through
# the proxy on loopback; see bench/README.md. PROXY=kamailio for the
# comparison run.
PROXY ?= sipvigil
bench-capacity: build
	./bench/capacity.sh --proxy $(PROXY)

bench-reorder: build
	./bench/reorder.sh --proxy $(PROXY)

# Delay accuracy of the suspend queues at 5,000 suspends/s (and capacity
# with and without the re-INVITE queue: see bench/README.md).
bench-suspend: build
	./bench/suspend.sh

# Capacity with eBPF off and on in the same run (ratio >= 0.95, 0 ring
# drops) and the programs' CPU cost per packet; needs root. 40 fixed-rate
# trials per mode, off and on interleaved trial by trial, each mode on its
# own up/down staircase (bench/README.md, "ebpf.sh"): one bisection on 2
# shared cores moves by 10-20 %, and host drift moves the CPU per call by
# ~10 % between consecutive trials; ~30 min. EBPF_BENCH_FLAGS=--netns puts
# SIPp in a network namespace (one hook per packet, as on a NIC);
# EBPF_BENCH_FLAGS="--staircase 0 --repeat 3" is the older search-pair run.
EBPF_BENCH_FLAGS ?=
bench-ebpf: build
	./bench/ebpf.sh --staircase 40 $(EBPF_BENCH_FLAGS)

# Capacity with tracing off and on (100% sampling, eBPF on in both) in the
# same run (ratio >= 0.90, 0 spans dropped); needs root.
bench-trace: build
	$(GO) build -o bin/otlpsink ./bench/otlpsink
	./bench/trace.sh

# Regenerate dashboards/*.json from the Go builders in dashboards/
# (go test ./dashboards fails when the committed JSON is stale).
dashboards:
	$(GO) run ./dashboards/gen -out dashboards

# Jaeger v2: the real OTLP trace backend of test/e2e, built from its own
# module tools/jaeger (never the main go.mod: the otel versions conflict;
# see tools/jaeger/README.md). Cold 5-10 min and 2.2 GB RAM on a fresh
# machine, warm under 20 s, nothing to do when up to date.
JAEGER := bin/jaeger

jaeger: $(JAEGER)

$(JAEGER): tools/jaeger/go.mod tools/jaeger/go.sum
	$(GO) build -C tools/jaeger -o ../../$(JAEGER) github.com/jaegertracing/jaeger/cmd/jaeger
	@touch $@

clean:
	rm -rf bin
