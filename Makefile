# Thin wrappers around the commands the README documents; .ci/run is what CI runs.
.PHONY: run build test lint ci bench loadtest

run:
	go run ./cmd/gatehouse serve --dev

# The binary to deploy: static (no libc, so it runs in a scratch or distroless
# image) and without the symbol table and DWARF, which panics and pprof do not
# need. Both lower the idle footprint (docs/performance.md, Memory).
BINARY ?= gatehouse
build:
	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o $(BINARY) ./cmd/gatehouse

test:
	go test -race ./...

lint:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	go vet ./...

ci:
	./.ci/run

# Go benchmarks of the hot paths (docs/performance.md); CI runs them once each.
bench:
	go test -run '^$$' -bench . -benchmem ./...

# Side-by-side load test against node-oidc-provider with oidcload (docs/performance.md).
loadtest:
	./.ci/loadtest.sh
