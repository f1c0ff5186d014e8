# Thin wrappers around the commands the README documents; .ci/run is what CI runs.
.PHONY: run test lint ci

run:
	go run ./cmd/gatehouse serve --dev

test:
	go test -race ./...

lint:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	go vet ./...

ci:
	./.ci/run
