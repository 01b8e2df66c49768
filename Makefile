# Keel's build and test entry points. `make test` is what CI runs.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build test test-deps vet dev bench clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/keel ./cmd/keel

# test installs missing test tools (dig, curl, ...), then vets and runs
# every test, end-to-end included, with the race detector.
test: test-deps vet
	$(GO) test -race -count=1 -timeout 15m ./...
	# The proxy's whole suite once more with the other HTTP and TCP engines
	# (the defaults are the epoll loops; fasthttp serves what the HTTP loop
	# hands over, the goroutine path service ports of named hosts).
	KEEL_PROXY_ENGINE=fasthttp KEEL_PROXY_TCP_ENGINE=go $(GO) test -race -count=1 ./proxy

test-deps:
	./scripts/test-deps.sh

vet:
	./scripts/check-tree.sh
	$(GO) vet ./...

dev:
	$(GO) run ./cmd/keel dev

# bench runs the benchmarks of ../shared/BENCH.md (after the test tools: the
# 3-node figures need ZooKeeper), with the peers bench-deps.sh installs.
bench: test-deps
	./scripts/bench-deps.sh
	$(GO) test -run xxx -bench . -benchtime 20x ./allocator
	$(GO) test -run xxx -bench Propagation -benchtime 1000x ./bench
	$(GO) test -run xxx -bench HAPropagation -benchtime 20x -timeout 20m ./e2e
	$(GO) test -run xxx -bench Launch -benchtime 1x -timeout 30m ./bench
	$(GO) test -run xxx -bench 'GatewayMemory|MasterMemory' -benchtime 1x -timeout 30m ./bench
	$(GO) run ./bench/cmd/proxybench run --case all --pairs 3 --duration 5s
	$(GO) run ./bench/cmd/dnsbench run --pairs 3 --duration 10s

clean:
	rm -rf bin
