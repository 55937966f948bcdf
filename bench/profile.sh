#!/usr/bin/env bash
# bench/profile.sh — what share of Gatehouse's CPU a part of it takes,
# under the same load as bench/run.sh: a CPU profile of one Gatehouse
# variant behind wrk, then the inclusive share of the functions you name.
#
#   bash bench/profile.sh                       # variant "obs": logging and metrics
#   VARIANT=auth bash bench/profile.sh          # the cached bearer-token check
#   VARIANT=full bash bench/profile.sh          # obs + auth + a per-IP limit (bench/run.sh's gatehouse-full)
#   VARIANT=plain FOCUS='httputil' bash bench/profile.sh
#   SECONDS_=60 bash bench/profile.sh           # a longer profile
#   PROTO=h2 VARIANT=plain bash bench/profile.sh  # HTTPS (TLS 1.3) + HTTP/2 clients, with h2load
#
# Variants: plain (metrics and access log off), obs (metrics on, access log
# to a file), auth (every request carries a 600-byte RS256 token the route
# checks, from the cache), full (obs and auth together, and a per-client-IP
# rate limit that never refuses, as bench/run.sh's gatehouse-full). FOCUS is a regexp over function names; the
# default depends on the variant. The profile is kept (path printed) for
# `go tool pprof`.
#
# PROTO=h2 loads Gatehouse as bench/run.sh's PROTO=h2 does: TLS 1.3 with a
# self-signed ECDSA P-256 certificate, ALPN h2, `h2load -c CONNS -m
# STREAMS -t 1`, an upstream pool sized CONNS x STREAMS (the keys of the
# auth variants are served on a plain listener beside it).
#
# Why a profile: the harness's per-round noise (up to 15 %) is larger than
# the 5 % budgets it would have to show; a profile of one process under
# load says directly what share a part takes. See docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/origin.sh

VARIANT=${VARIANT:-obs}
SECONDS_=${SECONDS_:-30}
CONNS=${CONNS:-32}
PROTO=${PROTO:-h1}             # h1: wrk; h2: HTTPS + HTTP/2, h2load
STREAMS=${STREAMS:-10}         # h2: concurrent streams per connection (h2load -m)
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

case $PROTO in
  h1) tools="nginx wrk taskset curl go" ;;
  h2) tools="nginx h2load openssl taskset curl go" ;;
  *) echo "profile.sh: PROTO must be h1 or h2, not '$PROTO'" >&2; exit 1 ;;
esac
for cmd in $tools; do
  command -v "$cmd" >/dev/null || { echo "profile.sh: needs $cmd (apt-get install -y nginx-light wrk nghttp2-client openssl)" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/gatehouse-profile.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ORIGIN=$(port) GH=$(port) ADMIN=$(port)
PLAIN=$GH   # where the auth variants' keys are fetched (h2: a plain listener of its own)
[[ $PROTO == h2 ]] && PLAIN=$(port)

mkdir -p "$TMP/origin/logs" "$TMP/keys" "$TMP/logs" "$TMP/conf"
origin_conf "$TMP/origin" "$ORIGIN" "$(printf 'x%.0s' $(seq 100))" >"$TMP/origin/nginx.conf"

access=off auth="" routeauth="" keysroute="" hdr=() focus="" limits="" routelimits=""
case $VARIANT in
  plain) focus=${FOCUS:-'proxy\.\(\*Engine\)\.(early|routeRequest|requestFilters|finish)$'} ;;
  obs) access="$TMP/logs/access.log"; focus=${FOCUS:-'proxy\.\(\*Engine\)\.logging$|observe/metrics|prometheus'} ;;
  auth|full)
    go run ./bench/mktoken -dir "$TMP/keys" -issuer "http://127.0.0.1:$PLAIN" >"$TMP/token"
    hdr=(-H "Authorization: Bearer $(cat "$TMP/token")")
    auth="auth:
  issuers:
    bench: { issuer: \"http://127.0.0.1:$PLAIN\", jwks_uri: \"http://127.0.0.1:$PLAIN/jwks.json\", audience: bench }"
    keysroute="  - name: keys
    match: { path: /jwks.json }
    static: { root: \"$TMP/keys\" }"
    routeauth="    auth: { roles: { any_of: [admin] } }"
    focus=${FOCUS:-'authn\.\(\*Filter\)\.FilterRequest$'}
    if [[ $VARIANT == full ]]; then
      access="$TMP/logs/access.log"
      limits=$'rate_limits:\n  per-ip: { key: client_ip, rate: 10000000/s }'
      routelimits="    rate_limits: [per-ip]"
      focus=${FOCUS:-'proxy\.\(\*Engine\)\.logging$|observe/metrics|prometheus|authn\.\(\*Filter\)\.FilterRequest$|ratelimit'}
    fi ;;
  *) echo "profile.sh: unknown VARIANT $VARIANT (plain, obs, auth, full)" >&2; exit 1 ;;
esac

server="server:
  listen: [\"127.0.0.1:$GH\"]" pool="" scheme=http
if [[ $PROTO == h2 ]]; then
  mkdir -p "$TMP/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -keyout "$TMP/tls/key.pem" -out "$TMP/tls/cert.pem" >"$TMP/openssl.log" 2>&1 ||
    { cat "$TMP/openssl.log" >&2; exit 1; }
  # redirect_http off: the auth variants fetch their keys on the plain listener.
  server="server:
  listen: [\"127.0.0.1:$PLAIN\"]
  tls:
    listen: [\"127.0.0.1:$GH\"]
    redirect_http: false
    certificates:
      - { cert: \"$TMP/tls/cert.pem\", key: \"$TMP/tls/key.pem\" }"
  pool="
    max_idle_per_target: $((CONNS * STREAMS))"
  scheme=https
fi

cat >"$TMP/conf/gatehouse.yaml" <<EOF
$server
admin:
  listen: "127.0.0.1:$ADMIN"
  pprof: true
log:
  access: "$access"
$auth
$limits
upstreams:
  origin:
    targets: ["127.0.0.1:$ORIGIN"]$pool
routes:
$keysroute
  - name: all
    match: { path_prefix: / }
    upstream: origin
$routeauth
$routelimits
EOF

CGO_ENABLED=0 go build -o "$TMP/gatehouse" ./cmd/gatehouse
taskset -c "$LOAD_CPU" nginx -p "$TMP/origin" -c "$TMP/origin/nginx.conf" -e "$TMP/origin/logs/error.log" &
PIDS+=($!)
GOMAXPROCS=1 taskset -c "$PROXY_CPU" "$TMP/gatehouse" run -c "$TMP/conf/gatehouse.yaml" >"$TMP/gatehouse.log" 2>&1 &
PIDS+=($!)
ok=""
for _ in $(seq 100); do
  if [[ $PROTO == h2 ]]; then
    code=$(curl -sk --http2 -o /dev/null -w '%{http_code} %{http_version}' "${hdr[@]}" "https://127.0.0.1:$GH/check" || true)
    [[ $code == "200 2" ]] && { ok=1; break; }
  else
    code=$(curl -s -o /dev/null -w '%{http_code}' "${hdr[@]}" "http://127.0.0.1:$GH/check" || true)
    [[ $code == 200 ]] && { ok=1; break; }
  fi
  sleep 0.1
done
[[ -n $ok ]] || { echo "profile.sh: gatehouse did not answer 200 over $PROTO (last: $code)" >&2; cat "$TMP/gatehouse.log" >&2; exit 1; }

if [[ $PROTO == h2 ]]; then
  taskset -c "$LOAD_CPU" h2load -c "$CONNS" -m "$STREAMS" -t 1 --tls13-ciphers=TLS_AES_128_GCM_SHA256 \
    -D "$((SECONDS_ + 4))" "${hdr[@]}" "https://127.0.0.1:$GH/bench" >"$TMP/wrk.out" 2>&1 &
else
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$((SECONDS_ + 4))s" "${hdr[@]}" "http://127.0.0.1:$GH/bench" >"$TMP/wrk.out" &
fi
WRK=$!
sleep 2
curl -s -o "$TMP/cpu.pprof" "http://127.0.0.1:$ADMIN/debug/pprof/profile?seconds=$SECONDS_"
wait "$WRK"

if [[ $PROTO == h2 ]]; then
  rate="h2load: $(grep -E '^finished in' "$TMP/wrk.out"); $(grep -E '^status codes' "$TMP/wrk.out")"
else
  rate=$(grep -E 'Requests/sec' "$TMP/wrk.out" | tr -s ' ')
fi
echo "variant $VARIANT ($PROTO), commit $(git describe --always --dirty 2>/dev/null || echo unknown), $rate"
echo "profile: $TMP/cpu.pprof (go tool pprof -top -cum $TMP/gatehouse $TMP/cpu.pprof)"
echo "functions matching: $focus"
# With -focus, pprof's "Showing nodes accounting for T, P% of total" counts
# every sample whose stack holds a matching function: the inclusive share.
go tool pprof -top -cum -focus "$focus" "$TMP/gatehouse" "$TMP/cpu.pprof" 2>/dev/null |
  awk '/^Showing nodes accounting for/ { sub(/,$/, "", $5); print "share of the proxy'"'"'s CPU: " $6 " (" $5 " of " $8 ")" }
       / flat  flat%/ { top=1; print; next }
       top && n < 10 { print; n++ }'
