# Convenience targets; scripts/test-all.sh is the suite CI runs.
GO ?= go
BIN ?= bin/gatehouse
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: build image-layout demo run fmt vet test race integration e2e fuzz-smoke bench bench-compare test-all

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN) ./cmd/gatehouse

# The image's layout without a Docker daemon, as test/deploy builds and
# checks it (an empty base, not distroless: see docs/operations.md), for
# skopeo/crane/podman: skopeo copy oci:bin/image-layout:$(VERSION) …
image-layout:
	GATEHOUSE_IMAGE_LAYOUT=$(CURDIR)/bin/image-layout GATEHOUSE_IMAGE_VERSION=$(VERSION) \
		$(GO) test -count=1 -run '^TestImageLayout$$/^shipped$$' ./test/deploy/

demo:
	$(GO) run ./cmd/gatehouse demo

run: build
	./$(BIN) run -c gatehouse.yaml

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./... && $(GO) vet -tags integration,e2e ./test/...

test:
	$(GO) test ./...

race:
	$(GO) test -race ./...

integration:
	npm ci --prefix test/browser --no-audit --no-fund
	$(GO) test -tags integration -count=1 ./test/integration/
	GATEHOUSE_TEST_FAST_SERVERS=false $(GO) test -tags integration -count=1 ./test/integration/
	npm ci --prefix test/turbo --no-audit --no-fund
	TURBO_TELEMETRY_DISABLED=1 $(GO) test -tags integration -count=1 ./test/turbo/

e2e:
	npm ci --prefix test/e2e/nextapp --no-audit --no-fund
	npm ci --prefix test/e2e/oidc --no-audit --no-fund
	$(GO) test -tags e2e -count=1 ./test/e2e/

fuzz-smoke:
	$(GO) test -run '^$$' -fuzz '^FuzzNormalizePath$$' -fuzztime 10s ./internal/route/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 10s ./internal/config/

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

bench-compare:
	bash bench/run.sh

test-all:
	bash scripts/test-all.sh
