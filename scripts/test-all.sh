#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this):
# vet, unit tests with the race detector, the integration tests (real
# binary and upstream processes on loopback, a real Prometheus server, the
# status page in headless Chromium; twice, the second time with
# net/http's HTTP/1.1 and HTTP/2 servers instead of h1server and h2server), the Next.js end-to-end
# test and a short run of every fuzz target. Needs Go and Node.js; the
# Prometheus, Chromium, nghttp and curl tests skip when those Debian
# packages are missing (the turbo test when `npm ci --prefix test/turbo`
# could not run), unless GATEHOUSE_REQUIRE_TOOLS=1 (as in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
# The first integration leg runs the tests' configs as written (h1server
# and h2server, the defaults); the second sets GATEHOUSE_TEST_FAST_SERVERS
# itself.
unset GATEHOUSE_TEST_FAST_SERVERS

step() { printf '\n==> %s\n' "$*"; }

step "go vet"
go vet ./...
go vet -tags integration,e2e ./test/...

step "unit tests (race detector)"
go test -race -count=1 ./...

step "integration tests (gatehouse binary on loopback; Prometheus, Chromium)"
if [ ! -d test/browser/node_modules ] || [ test/browser/package-lock.json -nt test/browser/node_modules/.package-lock.json ]; then
  npm ci --prefix test/browser --no-audit --no-fund
fi
go test -tags integration -count=1 -timeout 10m ./test/integration/

step "integration tests again, served by net/http alone (server.fast_http1 and fast_http2: false)"
# net/http's behaviour is the contract h1server and h2server keep (issue
# 16): every config the tests start gets fast_http1: false and
# fast_http2: false unless it sets the key itself (testutil.ConfigForEnv).
GATEHOUSE_TEST_FAST_SERVERS=false go test -tags integration -count=1 -timeout 10m ./test/integration/

step "end-to-end: a Next.js 15 app and an OAuth 2.1 server (oidc-provider) with gatehouse"
for app in test/e2e/nextapp test/e2e/oidc; do
  if [ ! -d "$app/node_modules" ] || [ "$app/package-lock.json" -nt "$app/node_modules/.package-lock.json" ]; then
    npm ci --prefix "$app" --no-audit --no-fund
  fi
done
NEXT_TELEMETRY_DISABLED=1 go test -tags e2e -count=1 -timeout 10m ./test/e2e/

step "Turborepo: the README's turbo.json with the real turbo (npm) over a throwaway monorepo"
if [ ! -d test/turbo/node_modules ] || [ test/turbo/package-lock.json -nt test/turbo/node_modules/.package-lock.json ]; then
  npm ci --prefix test/turbo --no-audit --no-fund
fi
TURBO_TELEMETRY_DISABLED=1 go test -tags integration -count=1 -timeout 10m ./test/turbo/

step "fuzz smoke (10s per target)"
go test -run '^$' -fuzz '^FuzzNormalizePath$' -fuzztime 10s ./internal/route/
go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 10s ./internal/config/
go test -run '^$' -fuzz '^FuzzH1NextResponseIsItsOwn$' -fuzztime 10s ./internal/lb/
go test -run '^$' -fuzz '^FuzzSimpleHeadMatchesReadResponse$' -fuzztime 10s ./internal/lb/
go test -run '^$' -fuzz '^FuzzParseHeadMatchesNetHTTP$' -fuzztime 10s ./internal/h1server/
go test -run '^$' -fuzz '^FuzzParseTargetMatchesNetURL$' -fuzztime 10s ./internal/httpsyntax/
go test -run '^$' -fuzz '^FuzzValidFieldValue$' -fuzztime 10s ./internal/httpsyntax/
go test -run '^$' -fuzz '^FuzzServerMatchesNetHTTP$' -fuzztime 10s ./internal/h1server/
go test -run '^$' -fuzz '^FuzzFramingMatchesNetHTTP$' -fuzztime 10s ./internal/h1guard/
go test -run '^$' -fuzz '^FuzzWSFramesMatchesWholeParse$' -fuzztime 10s ./internal/proxy/
go test -run '^$' -fuzz '^FuzzServeConn$' -fuzztime 10s ./internal/h2server/
go test -run '^$' -fuzz '^FuzzRepeatedLiterals$' -fuzztime 10s ./internal/h2server/
for target in FuzzSafeReturn FuzzParseCallback FuzzSessionCookie; do
  go test -run '^$' -fuzz "^${target}\$" -fuzztime 10s ./internal/auth/oidc/
done

step "all tests passed"
