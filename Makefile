# Thin wrappers around the commands the README documents; .ci/run is what CI runs.
.PHONY: run test lint ci bench loadtest

run:
	go run ./cmd/gatehouse serve --dev

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
