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

step "fuzz smoke (a fixed number of inputs per target, about 5s each)"
# Counts, not -fuzztime 10s: with a duration, Go 1.26's fuzz coordinator can
# report its own deadline as a failure ("context deadline exceeded", no
# failing input written) when the time runs out while a worker is busy,
# golang/go#75804, fixed in Go 1.27. A count has no deadline to race; on a
# slow machine the smoke takes longer instead of failing.
fuzz() { go test -run '^$' -fuzz "^$1\$" -fuzztime "$3" "$2"; }
fuzz FuzzNormalizePath ./internal/route/ 20000x
fuzz FuzzParse ./internal/config/ 20000x
fuzz FuzzH1NextResponseIsItsOwn ./internal/lb/ 10000x
fuzz FuzzSimpleHeadMatchesReadResponse ./internal/lb/ 50000x
fuzz FuzzWriteHeadMatchesRequestWrite ./internal/lb/ 100000x
fuzz FuzzAppendFieldsMatchesWriteHead ./internal/lb/ 60000x
fuzz FuzzParseHeadMatchesNetHTTP ./internal/h1server/ 50000x
fuzz FuzzParseTargetMatchesNetURL ./internal/httpsyntax/ 100000x
fuzz FuzzValidFieldValue ./internal/httpsyntax/ 100000x
fuzz FuzzServerMatchesNetHTTP ./internal/h1server/ 25000x
fuzz FuzzWriteFieldsMatchesWriteSubset ./internal/h1server/ 50000x
fuzz FuzzFramingMatchesNetHTTP ./internal/h1guard/ 100000x
fuzz FuzzWSFramesMatchesWholeParse ./internal/proxy/ 5000x
fuzz FuzzServeConn ./internal/h2server/ 15000x
fuzz FuzzRepeatedLiterals ./internal/h2server/ 15000x
for target in FuzzSafeReturn FuzzParseCallback FuzzSessionCookie; do
  fuzz "$target" ./internal/auth/oidc/ 30000x
done

step "all tests passed"
