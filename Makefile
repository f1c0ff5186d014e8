# Thin wrappers around the commands the README documents; .ci/run is what CI runs.
.PHONY: run build test lint ci bench loadtest

run:
	go run ./cmd/gatehouse serve --dev

# The binary to deploy: static (no libc to map, so it runs in a scratch or
# distroless image and idles in 1.5 MiB less, docs/performance.md, Memory), and
# without the symbol table and DWARF (38 MB on disk instead of 55; panics and
# pprof do not need them).
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
