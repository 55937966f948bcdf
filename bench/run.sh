#!/usr/bin/env bash
# bench/run.sh — Gatehouse beside nginx, HAProxy and Caddy, in front of the
# same fast origin on loopback. See bench/README.md for the method.
#
#   bash bench/run.sh                      # defaults: 3 rounds x 10 s, 32 conns
#   ROUNDS=1 DURATION=3s WARMUP=1s bash bench/run.sh   # quick smoke run
#   PROTO=h2 bash bench/run.sh             # HTTPS (TLS 1.3) + HTTP/2 clients, with h2load
#   PROTO=both bash bench/run.sh           # h1, then h2, and one table of both as ratios to nginx
#
# stdout: a markdown report (paste into docs/performance.md).
# stderr: progress and diagnostics.
set -euo pipefail

# ---------------------------------------------------------------- settings --
PROTO=${PROTO:-h1}             # h1: plain HTTP/1.1 driven by wrk; h2: HTTPS (TLS 1.3) + HTTP/2 driven by h2load; both: h1 then h2
ROUNDS=${ROUNDS:-3}            # interleaved rounds; the report is the median
DURATION=${DURATION:-10s}      # measured wrk/h2load run per proxy per round
WARMUP=${WARMUP:-2s}           # unmeasured wrk/h2load run just before each measured one
CONNS=${CONNS:-32}             # wrk/h2load connections (keep-alive)
THREADS=${THREADS:-1}          # wrk/h2load threads
STREAMS=${STREAMS:-10}         # h2 only: concurrent streams per connection (h2load -m)
TLS13_CIPHERS=${TLS13_CIPHERS:-TLS_AES_128_GCM_SHA256}  # h2 only: the suites h2load offers (one: every proxy uses the same)
DEFAULT_PROXIES="nginx nginx-full haproxy caddy goplain gatehouse gatehouse-obs gatehouse-auth gatehouse-rl gatehouse-full"
PROXIES=${PROXIES:-$DEFAULT_PROXIES}
PROXY_CPU=${PROXY_CPU:-0}      # core the proxy is pinned to
LOAD_CPU=${LOAD_CPU:-1}        # core wrk and the origin are pinned to
BASE_REV=${BASE_REV:-}         # gatehouse-base: gatehouse built from this git revision, for an A/B
BASE_BIN=${BASE_BIN:-}         # or gatehouse-base is this prebuilt binary (e.g. built with -overlay)
BASE_PORT=${BASE_PORT:-18080}  # first port tried; busy ports are skipped
BODY_BYTES=${BODY_BYTES:-100}  # origin response body size
HEADERS=${HEADERS:-minimal}    # minimal: only what each variant needs; browser: also a browser's dozen request headers
DIRECT=${DIRECT:-1}            # 1: also run wrk straight at the origin (ceiling of core $LOAD_CPU)
LOG_DIR=${LOG_DIR:-}           # where gatehouse-obs and gatehouse-full write their access logs (default: <tmp>/logs, on disk)
# A browser's usual request headers (HEADERS=browser): requests of this
# shape make Go's header maps tables already, as real traffic does; wrk's
# minimal request keeps them small maps (up to 8 entries).
BROWSER_HDR=(-H "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
  -H "Accept-Encoding: gzip, deflate, br" -H "Accept-Language: en-US,en;q=0.9" -H "Cache-Control: no-cache"
  -H "Cookie: theme=dark; lang=en" -H "Sec-Fetch-Dest: document" -H "Sec-Fetch-Mode: navigate"
  -H "Sec-Fetch-Site: same-origin" -H "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"
  -H "Referer: http://127.0.0.1/admin/")
KEEP_TMP=${KEEP_TMP:-0}        # 1: keep the temp dir (configs, logs) at exit
FAIL_ON_STATUS=${FAIL_ON_STATUS:-1}  # 1: stop the run when a measured run got a non-2xx response (wrk: 4xx/5xx; h2load: 3xx/4xx/5xx)
SUMMARY_OUT=${SUMMARY_OUT:-}   # internal (PROTO=both): write the medians as TSV here

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$REPO_ROOT/bench/origin.sh"
CLK_TCK=$(getconf CLK_TCK)

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

case $PROTO in
  h1) LOADGEN=wrk ;;
  h2) LOADGEN=h2load ;;
  both) LOADGEN="wrk, h2load" ;;
  *) die "PROTO must be h1 (plain HTTP/1.1, wrk), h2 (HTTPS + HTTP/2, h2load) or both, not '$PROTO'" ;;
esac

# ------------------------------------------------------------ requirements --
need_pkgs=()
case $PROTO in
  h1) load_tools="wrk:wrk" ;;
  h2) load_tools="h2load:nghttp2-client openssl:openssl" ;;
  both) load_tools="wrk:wrk h2load:nghttp2-client openssl:openssl" ;;
esac
for pair in nginx:nginx-light haproxy:haproxy caddy:caddy $load_tools taskset:util-linux \
            curl:curl ss:iproute2 awk:gawk; do
  cmd=${pair%%:*} pkg=${pair#*:}
  if ! command -v "$cmd" >/dev/null 2>&1 && [[ ! -x /usr/sbin/$cmd ]]; then
    need_pkgs+=("$pkg")
  fi
done
if ((${#need_pkgs[@]})); then
  log "missing tools; install them with:"
  log "  apt-get update && apt-get install -y ${need_pkgs[*]}"
  exit 2
fi
export PATH="$PATH:/usr/sbin:/sbin"
ncpu=$(nproc --all)
((ncpu >= 2)) || die "needs at least 2 cores (proxy on core $PROXY_CPU, load on core $LOAD_CPU)"

# ------------------------------------------------------------ PROTO=both --
# One invocation, both protocols: the whole run with PROTO=h1, then with
# PROTO=h2 (each with its own interleaved rounds, processes and ports), then
# one table of both as ratios to nginx, followed by the two full reports.
if [[ $PROTO == both ]]; then
  BOTH=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench-both.XXXXXX")
  trap 'rm -rf "$BOTH"' EXIT
  LOADAVG0=$(cut -d' ' -f1-3 /proc/loadavg)
  for p in h1 h2; do
    log "PROTO=both: the $p run"
    PROTO=$p SUMMARY_OUT=$BOTH/$p.tsv bash "${BASH_SOURCE[0]}" >"$BOTH/$p.md" || die "the $p run failed"
  done
  LOADAVG1=$(cut -d' ' -f1-3 /proc/loadavg)
  cmdline="PROTO=both ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS THREADS=$THREADS STREAMS=$STREAMS"
  [[ $HEADERS == browser ]] && cmdline="HEADERS=browser $cmdline"
  [[ $PROXIES != "$DEFAULT_PROXIES" ]] && cmdline+=" PROXIES=\"$PROXIES\""
  [[ $DIRECT != 1 ]] && cmdline+=" DIRECT=$DIRECT"
  cmdline+=" bash bench/run.sh"
  {
    echo "### Gatehouse vs nginx, HAProxy, Caddy: HTTP/1.1 and HTTPS + HTTP/2, as ratios to nginx"
    echo
    echo "Command: \`$cmdline\`  "
    echo "Commit: $(cd "$REPO_ROOT" && git describe --always --dirty 2>/dev/null || echo unknown). h1: wrk, $CONNS connections; h2: h2load, $CONNS TLS 1.3 connections × $STREAMS streams. $ROUNDS interleaved rounds per protocol (h1 first, then h2), median shown. The details of each are in the two reports below.  "
    echo "Load average (1, 5, 15 min) before the run: $LOADAVG0; after: $LOADAVG1. Machine: $(nproc --all) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(date -u +%Y-%m-%d)."
    echo
    echo "| protocol | proxy | req/s | req/s vs nginx | CPU µs/request | CPU vs nginx | p99 latency | p99 vs nginx | RSS | RSS vs nginx |"
    echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"
    for p in h1 h2; do
      awk -F'\t' -v proto="$p" '
        function us(x) { return (x >= 1000) ? sprintf("%.2f ms", x / 1000) : sprintf("%d µs", x) }
        function ratio(a, b) { return (b > 0) ? sprintf("%.2f×", a / b) : "n/a" }
        { n++; name[n] = $1; rps[n] = $3; p99[n] = $5; cpu[n] = $6; rss[n] = $9; if ($1 == "nginx") r = n }
        END {
          for (i = 1; i <= n; i++) {
            if (name[i] == "direct") continue
            printf "| %s | %s | %.0f | %s | %.2f | %s | %s | %s | %.1f MiB | %s |\n", proto, name[i],
              rps[i], r ? ratio(rps[i], rps[r]) : "n/a", cpu[i], r ? ratio(cpu[i], cpu[r]) : "n/a",
              us(p99[i]), r ? ratio(p99[i], p99[r]) : "n/a", rss[i] / 1024, r ? ratio(rss[i], rss[r]) : "n/a"
          }
        }' "$BOTH/$p.tsv"
    done
    echo
    echo "Ratios: >1× means more req/s, more CPU per request, more latency or more memory than nginx on the same protocol. CPU µs/request: utime+stime of the proxy's whole process tree over the measured run, divided by the requests completed. RSS: VmRSS from /proc/<pid>/status summed over the proxy's process tree (nginx: master + worker), read at the end of each measured run, median over rounds; the peak (VmHWM) is in each report's table."
    echo
    cat "$BOTH/h1.md"
    echo
    cat "$BOTH/h2.md"
  }
  exit 0
fi

# --------------------------------------------------------- temp dir, trap --
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench.XXXXXX")
LOG_DIR=${LOG_DIR:-$TMP/logs}
chmod 755 "$TMP"   # nginx workers drop to 'nobody'
PIDS=()            # top-level PIDs of everything we started

descendants() {    # print $1 and all its descendants
  local p=$1 c
  echo "$p"
  for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do descendants "$c"; done
}

stop_tree() {   # TERM a process and its descendants (used for a proxy that failed its checks)
  local pids
  mapfile -t pids < <(descendants "$1")
  kill -TERM "${pids[@]}" 2>/dev/null || true
}

cleanup() {
  local rc=$? p all=()
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do
    kill -0 "$p" 2>/dev/null && mapfile -t -O "${#all[@]}" all < <(descendants "$p")
  done
  if ((${#all[@]})); then
    kill -TERM "${all[@]}" 2>/dev/null || true
    for _ in $(seq 50); do
      local alive=0
      for p in "${all[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
      ((alive)) || break
      sleep 0.1
    done
    kill -KILL "${all[@]}" 2>/dev/null || true
  fi
  if [[ $KEEP_TMP == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ ports --
declare -A USED_PORTS=()
next_port=$BASE_PORT
free_port() {   # free_port VAR: a port with no listener on 127.0.0.1, not handed out yet
  local -n _out=$1
  local listening
  listening=$(ss -Htln | awk '{print $4}' | sed 's/.*://')
  while :; do
    if [[ -z ${USED_PORTS[$next_port]:-} ]] && ! grep -qx "$next_port" <<<"$listening"; then
      USED_PORTS[$next_port]=1; _out=$next_port; next_port=$((next_port + 1)); return
    fi
    next_port=$((next_port + 1))
  done
}

wait_port() {   # wait_port PORT PID NAME
  local port=$1 pid=$2 name=$3
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 1
    if ss -Htln "sport = :$port" | grep -q .; then return 0; fi
    sleep 0.1
  done
  return 1
}

# -------------------------------------------------------------- /proc CPU --
cpu_ticks() {   # utime+stime (ticks) summed over a process tree
  local p sum=0 stat rest
  for p in $(descendants "$1"); do
    stat=$(cat /proc/"$p"/stat 2>/dev/null) || continue
    rest=${stat##*) }            # fields from 3 on (comm may contain spaces)
    set -- $rest                 # $12=utime(14) $13=stime(15)
    sum=$((sum + ${12} + ${13}))
  done
  echo "$sum"
}

rss_kb() {      # "VmRSS VmHWM" in KiB, each summed over a process tree
  local p
  for p in $(descendants "$1"); do cat /proc/"$p"/status 2>/dev/null; done |
    awk '/^VmRSS:/ {r += $2} /^VmHWM:/ {h += $2} END {printf "%d %d\n", r, h}'
}

origin_accepts() {  # connections the origin has accepted so far
  curl -s "http://127.0.0.1:$STATUS_PORT/" | awk 'NR == 3 {print $1}'
}

ipis() {   # rescheduling + function-call interrupts one core has taken (/proc/interrupts RES, CAL)
  awk -v col="$(($1 + 2))" '$1=="RES:" || $1=="CAL:" {n+=$col} END {print n+0}' /proc/interrupts 2>/dev/null || echo 0
}
core_busy() {   # "busy total" jiffies of one core from /proc/stat
  awk -v c="cpu$1" '$1==c {t=0; for(i=2;i<=NF;i++) t+=$i; idle=$5+$6; print t-idle, t}' /proc/stat
}

affinity_of() { # distinct Cpus_allowed_list over every thread of a process tree
  local p
  for p in $(descendants "$1"); do
    cat /proc/"$p"/task/*/status 2>/dev/null | awk '/^Cpus_allowed_list/ {print $2}'
  done | sort -u | paste -sd' '
}

# ------------------------------------------------------------- h2: TLS --
# One self-signed ECDSA P-256 certificate for 127.0.0.1 and localhost, used
# by every proxy. HAProxy wants the certificate and key in one PEM file.
if [[ $PROTO == h2 ]]; then
  mkdir -p "$TMP/tls"
  CERT=$TMP/tls/cert.pem KEY=$TMP/tls/key.pem CERTKEY=$TMP/tls/cert+key.pem
  if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
        -keyout "$KEY" -out "$CERT" >"$TMP/openssl.log" 2>&1; then
    cat "$TMP/openssl.log" >&2; die "openssl could not make the test certificate"
  fi
  cat "$CERT" "$KEY" >"$CERTKEY"
  # Upstream keep-alive pools sized for every stream h2load keeps in flight
  # (CONNS x STREAMS requests at once), so no proxy has to close and reopen
  # upstream connections because its pool is too small.
  POOL=$((CONNS * STREAMS))
  log "h2: self-signed ECDSA P-256 certificate for 127.0.0.1/localhost in $TMP/tls; upstream pools sized $POOL"
fi

# ---------------------------------------------------------------- origin --
BODY=$(head -c "$BODY_BYTES" /dev/zero | tr '\0' 'x')
free_port ORIGIN_PORT
free_port STATUS_PORT   # origin's stub_status: counts connections the proxies open
ORIGIN_TLS=""           # h2: a TLS + HTTP/2 listener for the "direct to origin" row
if [[ $PROTO == h2 && $DIRECT == 1 ]]; then
  free_port ORIGIN_TLS_PORT
  ORIGIN_TLS="
    server {
        listen 127.0.0.1:$ORIGIN_TLS_PORT ssl http2 backlog=4096;
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.3;
        location / {
            default_type text/plain;
            return 200 \"$BODY\";
        }
    }"
fi
mkdir -p "$TMP/origin/logs"
origin_conf "$TMP/origin" "$ORIGIN_PORT" "$BODY" "
    server {
        listen 127.0.0.1:$STATUS_PORT;
        location / { stub_status; }
    }$ORIGIN_TLS" >"$TMP/origin/nginx.conf"

start_bg() {    # start_bg NAME CPU CMD... ; sets STARTED_PID
  local name=$1 cpu=$2; shift 2
  taskset -c "$cpu" "$@" >"$TMP/$name.out" 2>&1 &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
}

log "temp dir $TMP"

# Other tenants on the same cores skew everything: measure them first.
pb0=$(core_busy "$PROXY_CPU"); pl0=$(core_busy "$LOAD_CPU"); sleep 1
pb1=$(core_busy "$PROXY_CPU"); pl1=$(core_busy "$LOAD_CPU")
IDLE_LOAD=$(awk -v a="$pb0" -v b="$pb1" -v c="$pl0" -v d="$pl1" 'BEGIN {
  split(a, A, " "); split(b, B, " "); split(c, C, " "); split(d, D, " ");
  printf "%.0f %.0f", (B[2] > A[2]) ? 100 * (B[1] - A[1]) / (B[2] - A[2]) : 0, (D[2] > C[2]) ? 100 * (D[1] - C[1]) / (D[2] - C[2]) : 0 }')
read -r IDLE_P IDLE_L <<<"$IDLE_LOAD"
log "before starting anything: core $PROXY_CPU ${IDLE_P}% busy, core $LOAD_CPU ${IDLE_L}% busy (load average $(cut -d' ' -f1-3 /proc/loadavg))"
if ((IDLE_P > 10 || IDLE_L > 10)); then
  log "WARNING: the cores are already busy with other work; numbers will be noisy"
fi
start_bg origin "$LOAD_CPU" nginx -p "$TMP/origin" -c "$TMP/origin/nginx.conf" -e "$TMP/origin/logs/error.log"
ORIGIN_PID=$STARTED_PID
wait_port "$ORIGIN_PORT" "$ORIGIN_PID" origin || { cat "$TMP/origin.out" >&2; die "origin did not start"; }
log "origin nginx pid $ORIGIN_PID on 127.0.0.1:$ORIGIN_PORT (cpus $(affinity_of "$ORIGIN_PID"))"

# --------------------------------------------------------------- proxies --
declare -A PORT=() PID=() VERSION=() SKIPPED=() HDR=() ADMIN=()

start_nginx() { start_nginx_as nginx; }

# nginx-full: nginx with what a production nginx front door does that
# gatehouse-full does too: an access log written to a file (JSON lines,
# buffered as Gatehouse's is: buffer=64k flush=1s), a per-client-IP
# limit_req zone set high enough never to refuse, the forwarding headers
# and a request id set on every upstream request, and the load sending
# the same 600-byte bearer token (forwarded, not checked: nginx cannot
# verify a JWT without a module). Beside gatehouse-full, the cost of the
# chain to nginx itself.
start_nginx-full() {
  local d=$TMP/nginx-full-keys
  mkdir -p "$d" "$LOG_DIR"
  if ! (cd "$REPO_ROOT" && go run ./bench/mktoken -dir "$d" -issuer "http://127.0.0.1:1") >"$d/token" 2>"$TMP/mktoken-nginx-full.log"; then
    SKIPPED[nginx-full]="bench/mktoken failed"; return 1
  fi
  local http_extra loc_extra
  http_extra=$(cat <<'CONF'

    log_format gatehouse escape=json '{"time":"$time_iso8601","request_id":"$request_id","client_ip":"$remote_addr","method":"$request_method","path":"$uri","status":$status,"bytes":$body_bytes_sent,"duration_ms":$request_time,"upstream":"$upstream_addr"}';
    limit_req_zone $binary_remote_addr zone=perip:10m rate=10000000r/s;
CONF
)
  loc_extra=$(cat <<'CONF'

            limit_req zone=perip burst=10000000 nodelay;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Request-Id $request_id;
CONF
)
  # In the location: nginx_head's "access_log off" cancels every
  # access_log of the http block.
  loc_extra+=$'\n'"            access_log $LOG_DIR/nginx-full-access.log gatehouse buffer=64k flush=1s;"
  start_nginx_as nginx-full "$http_extra" "$loc_extra" || return 1
  HDR[nginx-full]="Authorization: Bearer $(cat "$d/token")"
}

# start_nginx_as NAME [HTTP-EXTRA] [LOCATION-EXTRA]: nginx as a proxy to
# the origin, with lines added to its http block and its location.
start_nginx_as() {
  local name=$1 http_extra=${2:-} loc_extra=${3:-}
  local port; free_port port; local d="$TMP/$name"
  # h2: TLS 1.3 + HTTP/2 to clients (nginx 1.22 wants "listen ... ssl http2";
  # the "http2 on" directive only exists from 1.25.1), a pool for every stream.
  local listen="listen 127.0.0.1:$port backlog=4096;" tls="" keepalive=64
  if [[ $PROTO == h2 ]]; then
    listen="listen 127.0.0.1:$port ssl http2 backlog=4096;"
    tls="
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.3;"
    ((POOL > keepalive)) && keepalive=$POOL
  fi
  mkdir -p "$d/logs"
  { nginx_head "$d"; [[ -n $http_extra ]] && printf '%s\n' "$http_extra"; cat <<EOF
    upstream origin {
        server 127.0.0.1:$ORIGIN_PORT;
        keepalive $keepalive;
        keepalive_requests 10000000;
    }
    server {
        $listen$tls
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";$loc_extra
        }
    }
}
EOF
  } >"$d/nginx.conf"
  start_bg "$name" "$PROXY_CPU" nginx -p "$d" -c "$d/nginx.conf" -e "$d/logs/error.log"
  PORT[$name]=$port PID[$name]=$STARTED_PID
  VERSION[$name]=$(nginx -v 2>&1 | sed 's/.*version: //')
}

start_haproxy() {
  local port; free_port port
  local bind="bind 127.0.0.1:$port"
  [[ $PROTO == h2 ]] && bind+=" ssl crt $CERTKEY alpn h2,http/1.1 ssl-min-ver TLSv1.3"
  cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
frontend fe
    $bind
    default_backend be
backend be
    server origin 127.0.0.1:$ORIGIN_PORT
EOF
  start_bg haproxy "$PROXY_CPU" haproxy -db -f "$TMP/haproxy.cfg"
  PORT[haproxy]=$port PID[haproxy]=$STARTED_PID
  VERSION[haproxy]=$(haproxy -v 2>&1 | awk 'NR==1 {print $3}')
}

start_caddy() {
  local port; free_port port; local d="$TMP/caddy"
  mkdir -p "$d/data" "$d/config"
  if [[ $PROTO == h2 ]]; then
    # The certificate from files, TLS 1.3 only; h1 and h2 only (Caddy 2.6
    # would also open HTTP/3 on UDP and advertise it with Alt-Svc); the
    # transport's idle pool (default 32 per host) sized for every stream.
    cat >"$d/Caddyfile" <<EOF
{
    admin off
    auto_https off
    storage file_system $d/data
    servers {
        protocols h1 h2
    }
}
https://:$port {
    bind 127.0.0.1
    tls $CERT $KEY {
        protocols tls1.3
    }
    reverse_proxy 127.0.0.1:$ORIGIN_PORT {
        transport http {
            keepalive_idle_conns_per_host $POOL
        }
    }
}
EOF
  else
  cat >"$d/Caddyfile" <<EOF
{
    admin off
    auto_https off
    storage file_system $d/data
}
http://:$port {
    bind 127.0.0.1
    reverse_proxy 127.0.0.1:$ORIGIN_PORT
}
EOF
  fi
  XDG_DATA_HOME=$d/data XDG_CONFIG_HOME=$d/config HOME=$d GOMAXPROCS=1 \
    start_bg caddy "$PROXY_CPU" caddy run --config "$d/Caddyfile" --adapter caddyfile
  PORT[caddy]=$port PID[caddy]=$STARTED_PID
  VERSION[caddy]=$(caddy version 2>/dev/null | awk '{print $1}')
}

build_gatehouse() {  # once per run
  [[ -x $TMP/gatehouse ]] && return 0
  log "building gatehouse: CGO_ENABLED=0 go build -o $TMP/gatehouse ./cmd/gatehouse"
  if ! command -v go >/dev/null 2>&1; then
    SKIPPED[$1]="go toolchain not found"; return 1
  fi
  if ! (cd "$REPO_ROOT" && CGO_ENABLED=0 go build -o "$TMP/gatehouse" ./cmd/gatehouse) >"$TMP/gatehouse-build.log" 2>&1; then
    sed 's/^/[bench]   /' "$TMP/gatehouse-build.log" | head -20 >&2
    SKIPPED[$1]="go build ./cmd/gatehouse failed"; return 1
  fi
}

build_gatehouse_base() {  # gatehouse-base: the same build from BASE_REV's tree
  [[ -x $TMP/gatehouse-base ]] && return 0
  if [[ -n $BASE_BIN ]]; then   # a binary built elsewhere (an experiment's build flags)
    cp "$BASE_BIN" "$TMP/gatehouse-base" || { SKIPPED[gatehouse-base]="cannot copy $BASE_BIN"; return 1; }
    return 0
  fi
  if [[ -z $BASE_REV ]]; then SKIPPED[gatehouse-base]="BASE_REV not set"; return 1; fi
  log "building gatehouse-base from $BASE_REV"
  mkdir -p "$TMP/base-src"
  if ! (git -C "$REPO_ROOT" archive "$BASE_REV" | tar -x -C "$TMP/base-src" &&
        cd "$TMP/base-src" && CGO_ENABLED=0 go build -o "$TMP/gatehouse-base" ./cmd/gatehouse) >"$TMP/gatehouse-base-build.log" 2>&1; then
    sed 's/^/[bench]   /' "$TMP/gatehouse-base-build.log" | head -20 >&2
    SKIPPED[gatehouse-base]="building $BASE_REV failed"; return 1
  fi
}

# gatehouse_server PORT PLAIN [TLS-LINE]: the config's server section. h1:
# plain HTTP on PORT. h2: HTTPS on PORT (server.tls, the test certificate;
# TLS 1.3 and ALPN h2/http/1.1 are Gatehouse's defaults), plain HTTP on PLAIN.
# With SERVER_FAST=off (start_gatehouse_as's fifth argument) it also sets
# fast_http1 and fast_http2: false.
gatehouse_server() {
  if [[ $PROTO == h2 ]]; then
    printf 'server:\n  listen: ["127.0.0.1:%s"]\n  tls:\n    listen: ["127.0.0.1:%s"]\n    certificates:\n      - { cert: "%s", key: "%s" }\n' "$2" "$1" "$CERT" "$KEY"
    [[ -n ${3:-} ]] && printf '    %s\n' "$3"
  else
    printf 'server:\n  listen: ["127.0.0.1:%s"]\n' "$1"
  fi
  [[ ${SERVER_FAST:-on} == off ]] && printf '  fast_http1: false\n  fast_http2: false\n'
  return 0
}
# gatehouse_pool: h2 sizes the upstream's idle pool (default 256) for every stream.
# Printed at the end of the targets line, so h1 configs stay as they were.
gatehouse_pool() { [[ $PROTO == h2 ]] && printf '\n    max_idle_per_target: %s' "$POOL"; return 0; }

# start_gatehouse_as NAME ADMIN ACCESS [LIMIT] [FAST] [GOGC]: gatehouse
# with the admin listener (and so metrics) on or off, the access log off or
# to a file, optionally a per-client-IP rate limit on the route (set high
# enough that it never refuses: the cost of an allowed decision; "-" for
# none), with FAST=off net/http's HTTP/1.1 server for every request, and
# GOGC in its environment (empty: Go's default).
# With GH_AUTH=on in its environment, the route also requires a bearer
# token (RS256, keys from bench/mktoken served by the proxy itself at
# /jwks.json, verified once and then served from the auth cache), and the
# load sends that token on every request. h2: the keys are still fetched
# over plain HTTP (the plain listener, with redirect_http off so that
# 127.0.0.1, which the certificate covers, is not sent to HTTPS); requests
# are measured on HTTPS as for the others.
start_gatehouse_as() {
  local name=$1 admin=$2 access=$3 limit=${4:-} port plain admin_port limits="" route_limits=""
  local SERVER_FAST=${5:-on} # seen by gatehouse_server
  local gogc=${6:-}          # GOGC for the process (experiments)
  local bin=${GH_BIN:-$TMP/gatehouse}
  local auth=${GH_AUTH:-off} tls_line="" auth_conf="" keys_route="" route_auth="" d=""
  [[ -n ${GH_BIN:-} ]] || build_gatehouse "$name" || return 1
  free_port port; plain=$port
  [[ $PROTO == h2 ]] && free_port plain
  if [[ $admin == on ]]; then free_port admin_port; admin="127.0.0.1:$admin_port"; ADMIN[$name]=$admin; else admin=off; fi
  # Logs live apart from the configs, so no proxy's config directory holds
  # a file written 30k times a second.
  [[ $access == file ]] && { mkdir -p "$LOG_DIR"; access="$LOG_DIR/$name-access.log"; }
  [[ $limit == - ]] && limit=""
  if [[ $limit == per-ip ]]; then
    limits=$'rate_limits:\n  per-ip: { key: client_ip, rate: 10000000/s }'
    route_limits="    rate_limits: [per-ip]"
  fi
  if [[ $auth == on ]]; then
    d=$TMP/$name-keys; mkdir -p "$d"
    if ! (cd "$REPO_ROOT" && go run ./bench/mktoken -dir "$d" -issuer "http://127.0.0.1:$plain") >"$d/token" 2>"$TMP/mktoken-$name.log"; then
      SKIPPED[$name]="bench/mktoken failed"; return 1
    fi
    tls_line="redirect_http: false"
    auth_conf="auth:
  issuers:
    bench: { issuer: \"http://127.0.0.1:$plain\", jwks_uri: \"http://127.0.0.1:$plain/jwks.json\", audience: bench }"
    keys_route="  - name: keys
    match: { path: /jwks.json }
    static: { root: \"$d\" }"
    route_auth="    auth: { roles: { any_of: [admin] } }"
    HDR[$name]="Authorization: Bearer $(cat "$d/token")"
  fi
  cat >"$TMP/$name.yaml" <<EOF
admin:
  listen: "$admin"
$(gatehouse_server "$port" "$plain" "$tls_line")
log:
  access: "$access"
$auth_conf
$limits
upstreams:
  origin:
    targets: ["127.0.0.1:$ORIGIN_PORT"]$(gatehouse_pool)
routes:
$keys_route
  - name: all
    match: { path_prefix: / }
    upstream: origin
$route_auth
$route_limits
EOF
  GOGC=$gogc GOMAXPROCS=1 start_bg "$name" "$PROXY_CPU" "$bin" run -c "$TMP/$name.yaml"
  PORT[$name]=$port PID[$name]=$STARTED_PID
  VERSION[$name]=$(cd "$REPO_ROOT" && git describe --always --dirty 2>/dev/null || echo "uncommitted")
  return 0
}

# gatehouse-auth: like gatehouse, with every request carrying a bearer
# token the route verifies (cached after the first): the cost of auth.
start_gatehouse-auth() { GH_AUTH=on start_gatehouse_as gatehouse-auth off off; }

# gatehouse-hdr: plain gatehouse (no auth on the route), with wrk sending
# the same 600-byte bearer token as gatehouse-auth: the difference to
# gatehouse-auth is the auth work alone, without the bigger request.
start_gatehouse-hdr() {
  local d=$TMP/gatehouse-hdr-keys
  mkdir -p "$d"
  start_gatehouse_as gatehouse-hdr off off || return 1
  if ! (cd "$REPO_ROOT" && go run ./bench/mktoken -dir "$d" -issuer "http://127.0.0.1:1") >"$d/token" 2>"$TMP/mktoken-hdr.log"; then
    SKIPPED[gatehouse-hdr]="bench/mktoken failed"; return 1
  fi
  HDR[gatehouse-hdr]="Authorization: Bearer $(cat "$d/token")"
}

# gatehouse: metrics and access log off, comparable to the others.
start_gatehouse() { start_gatehouse_as gatehouse off off; }
# gatehouse-obs: metrics on (admin listener) and the access log written to
# a file: the cost of Gatehouse's instrumentation is the difference.
start_gatehouse-obs() { start_gatehouse_as gatehouse-obs on file; }
# gatehouse-rl: a per-client-IP rate limit (in memory) on every request.
start_gatehouse-rl() { start_gatehouse_as gatehouse-rl off off per-ip; }
# gatehouse-full: the production chain at once: metrics on (admin
# listener), the access log to a file, a bearer token checked (as
# gatehouse-auth) and a per-client-IP rate limit (as gatehouse-rl).
start_gatehouse-full() { GH_AUTH=on start_gatehouse_as gatehouse-full on file per-ip; }
# gatehouse-nethttp: plain gatehouse with fast_http1 and fast_http2:
# false, net/http's servers for every request: the difference to gatehouse
# is what internal/h1server (h1) or internal/h2server (h2) saves.
start_gatehouse-nethttp() { start_gatehouse_as gatehouse-nethttp off off - off; }
# gatehouse-base: plain gatehouse built from BASE_REV, beside the working
# tree's: an A/B of two commits in one run.
start_gatehouse-base() {
  build_gatehouse_base || return 1
  GH_BIN=$TMP/gatehouse-base start_gatehouse_as gatehouse-base off off || return 1
  if [[ -n $BASE_BIN ]]; then VERSION[gatehouse-base]=$(basename "$BASE_BIN"); else VERSION[gatehouse-base]=$(git -C "$REPO_ROOT" rev-parse --short "$BASE_REV"); fi
}


start_goplain() {  # reference: plain httputil.ReverseProxy (bench/goplain)
  local port; free_port port
  if ! (cd "$REPO_ROOT" && CGO_ENABLED=0 go build -o "$TMP/goplain" ./bench/goplain) >"$TMP/goplain-build.log" 2>&1; then
    SKIPPED[goplain]="go build ./bench/goplain failed"; return 1
  fi
  local tls=()
  [[ $PROTO == h2 ]] && tls=(-tls-cert "$CERT" -tls-key "$KEY" -max-idle "$POOL")
  GOMAXPROCS=1 start_bg goplain "$PROXY_CPU" "$TMP/goplain" -listen "127.0.0.1:$port" -upstream "127.0.0.1:$ORIGIN_PORT" "${tls[@]}"
  PORT[goplain]=$port PID[goplain]=$STARTED_PID
  VERSION[goplain]="net/http $(go env GOVERSION)"
  return 0
}

start_gofloor() {  # floor: the least a Go proxy does per request (bench/gofloor), h1 only
  if [[ $PROTO == h2 ]]; then SKIPPED[gofloor]="HTTP/1.1 only"; return 1; fi
  local port; free_port port
  if ! (cd "$REPO_ROOT" && CGO_ENABLED=0 go build -o "$TMP/gofloor" ./bench/gofloor) >"$TMP/gofloor-build.log" 2>&1; then
    SKIPPED[gofloor]="go build ./bench/gofloor failed"; return 1
  fi
  GOMAXPROCS=1 start_bg gofloor "$PROXY_CPU" "$TMP/gofloor" -listen "127.0.0.1:$port" -upstream "127.0.0.1:$ORIGIN_PORT"
  PORT[gofloor]=$port PID[gofloor]=$STARTED_PID
  VERSION[gofloor]="Go $(go env GOVERSION) netpoller, no parsing"
  return 0
}

sanity() {      # sanity NAME: 200 and the full body through the proxy (h2: over TLS 1.3 and HTTP/2)
  local name=$1 got want="200 $BODY_BYTES"
  local hdr=()
  [[ -n ${HDR[$name]:-} ]] && hdr=(-H "${HDR[$name]}")
  if [[ $PROTO == h2 ]]; then
    # --tlsv1.3: nothing older; --cacert: the certificate must verify for 127.0.0.1
    want="200 $BODY_BYTES 2"
    got=$(curl -s --http2 --tlsv1.3 --cacert "$CERT" "${hdr[@]}" -o "$TMP/$name.body" -w '%{http_code} %{size_download} %{http_version}' "https://127.0.0.1:${PORT[$name]}/bench" || true)
  else
    got=$(curl -s "${hdr[@]}" -o "$TMP/$name.body" -w '%{http_code} %{size_download}' "http://127.0.0.1:${PORT[$name]}/bench" || true)
  fi
  [[ $got == "$want" ]] && cmp -s "$TMP/$name.body" <(printf '%s' "$BODY") && return 0
  if [[ $PROTO == h2 ]]; then
    log "$name: sanity check failed: got '$got' (want '$want': status, body bytes, HTTP version)"
  else
    log "$name: sanity check failed: got '$got' (want '200 $BODY_BYTES')"
  fi
  return 1
}

ACTIVE=()
for name in $PROXIES; do
  case $name in nginx|nginx-full|haproxy|caddy|gatehouse|gatehouse-obs|gatehouse-auth|gatehouse-hdr|gatehouse-rl|gatehouse-full|gatehouse-nethttp|gatehouse-base|goplain|gofloor) ;; *) die "unknown proxy '$name'";; esac
  if ! "start_$name"; then log "SKIP $name: ${SKIPPED[$name]}"; continue; fi
  if ! wait_port "${PORT[$name]}" "${PID[$name]}" "$name"; then
    sed 's/^/[bench]   /' "$TMP/$name.out" | tail -20 >&2
    SKIPPED[$name]="did not start listening"; log "SKIP $name: did not start"
    stop_tree "${PID[$name]}"
    continue
  fi
  if ! sanity "$name"; then
    sed 's/^/[bench]   /' "$TMP/$name.out" | tail -20 >&2
    SKIPPED[$name]="sanity check failed (status/body)"
    [[ $PROTO == h2 ]] && SKIPPED[$name]="sanity check failed (status/body/HTTP/2 over TLS 1.3)"
    stop_tree "${PID[$name]}"
    continue
  fi
  log "$name ${VERSION[$name]} pid ${PID[$name]} on 127.0.0.1:${PORT[$name]} (cpus $(affinity_of "${PID[$name]}"))"
  ACTIVE+=("$name")
done
((${#ACTIVE[@]})) || die "no proxy started"
if [[ $DIRECT == 1 ]]; then   # reference row: no proxy at all
  PORT[direct]=$ORIGIN_PORT PID[direct]=$ORIGIN_PID VERSION[direct]="(no proxy)"
  # h2: the origin's own TLS + HTTP/2 listener
  [[ $PROTO == h2 ]] && PORT[direct]=$ORIGIN_TLS_PORT VERSION[direct]="(no proxy; origin's TLS + h2 listener)"
  ACTIVE+=(direct)
fi

# ------------------------------------------------------------------- wrk --
cat >"$TMP/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d sock_errors=%d status_errors=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
EOF

WRK=(taskset -c "$LOAD_CPU" wrk -t"$THREADS" -c"$CONNS")
H2LOAD=(taskset -c "$LOAD_CPU" h2load -c "$CONNS" -m "$STREAMS" -t "$THREADS" --tls13-ciphers="$TLS13_CIPHERS")
RESULTS=$TMP/results.tsv
: >"$RESULTS"
TLSINFO=$TMP/tls-negotiated.tsv   # h2: what h2load negotiated with each proxy
: >"$TLSINFO"
# h2load's per-request log goes in a directory of its own: Gatehouse watches
# the directories of its config and certificate files (inotify), and a write
# there per request would wake every Gatehouse instance's watcher.
H2LOG=$TMP/load/h2load.log
mkdir -p "$TMP/load"

# h2load_result NAME OUT LOG: h2load's summary (OUT) and per-request log
# (--log-file LOG: start, status, µs to the end of the response) as the same
# RESULT line report.lua prints for wrk. requests = 2xx responses;
# sock_errors = h2load's "errored" (failed below HTTP: resets, network,
# timeouts); status_errors = 3xx/4xx/5xx responses; latency percentiles from
# the log's completed responses.
h2load_result() {
  local name=$1 out=$2 log=$3 alpn tls
  alpn=$(awk -F': ' '/^Application protocol:/ {print $2; exit}' <<<"$out")
  if [[ $alpn != h2 ]]; then
    printf '%s\n' "$out" | tail -20 >&2
    die "$name: h2load negotiated '${alpn:-no protocol}', not h2"
  fi
  tls=$(awk -F': ' '/^TLS Protocol:/ {p = $2} /^Cipher:/ {c = $2} /^Server Temp Key:/ {k = $2} END {print p ", " c ", " k}' <<<"$out")
  printf '%s\t%s\n' "$name" "$tls, ALPN $alpn" >>"$TLSINFO"
  local lat
  lat=$(awk -F'\t' '$2 > 0 {print $3}' "$log" | sort -n | awk '{v[NR] = $1}
    function pct(p,   i) { i = int(NR * p / 100); if (i < NR * p / 100) i++; if (i < 1) i = 1; return v[i] }
    END { if (NR) printf "p50_us=%d p99_us=%d", pct(50), pct(99); else printf "p50_us=0 p99_us=0" }')
  awk -v lat="$lat" '
    /^finished in / {
      d = $3; sub(/,$/, "", d)
      if (d ~ /ms$/) { sub(/ms$/, "", d); us = d * 1000 } else if (d ~ /us$/) { sub(/us$/, "", d); us = d } else { sub(/s$/, "", d); us = d * 1e6 }
    }
    /^requests: / { for (i = 2; i <= NF; i++) { if ($(i + 1) ~ /^errored/) err = $i } }
    /^status codes: / { ok = $3; bad = $5 + $7 + $9 }
    END {
      if (us == "" || ok == "") exit 1
      printf "RESULT requests=%d duration_us=%d %s sock_errors=%d status_errors=%d\n", ok, us, lat, err, bad
    }' <<<"$out"
}

run_one() {     # run_one NAME ROUND
  local name=$1 round=$2
  local url="http://127.0.0.1:${PORT[$name]}/bench"
  local pid=${PID[$name]} out c0 c1 b0 b1 l0 l1 a0 a1
  local hdr=()
  [[ -n ${HDR[$name]:-} ]] && hdr=(-H "${HDR[$name]}")
  [[ $HEADERS == browser ]] && hdr+=("${BROWSER_HDR[@]}")
  if [[ $PROTO == h2 ]]; then
    url="https://127.0.0.1:${PORT[$name]}/bench"
    rm -f "$H2LOG"
    "${H2LOAD[@]}" "${hdr[@]}" -D "$WARMUP" "$url" >/dev/null 2>&1 || true
  else
    "${WRK[@]}" "${hdr[@]}" -d"$WARMUP" -s "$TMP/report.lua" "$url" >/dev/null 2>&1 || true
  fi
  kill -0 "$pid" 2>/dev/null || die "$name died during warm-up"
  a0=$(origin_accepts)
  c0=$(cpu_ticks "$pid"); b0=$(core_busy "$PROXY_CPU"); l0=$(core_busy "$LOAD_CPU")
  local i0p i0l i1p i1l; i0p=$(ipis "$PROXY_CPU"); i0l=$(ipis "$LOAD_CPU")
  if [[ $PROTO == h2 ]]; then
    out=$("${H2LOAD[@]}" "${hdr[@]}" -D "$DURATION" --log-file="$H2LOG" "$url" 2>&1) || true
  else
    out=$("${WRK[@]}" "${hdr[@]}" -d"$DURATION" -s "$TMP/report.lua" "$url" 2>&1) || true
  fi
  c1=$(cpu_ticks "$pid"); b1=$(core_busy "$PROXY_CPU"); l1=$(core_busy "$LOAD_CPU")
  i1p=$(ipis "$PROXY_CPU"); i1l=$(ipis "$LOAD_CPU")
  a1=$(origin_accepts)
  local rss hwm; read -r rss hwm < <(rss_kb "$pid")
  [[ $PROTO == h2 ]] && out=$(h2load_result "$name" "$out" "$H2LOG" || printf '%s\n' "$out")
  local line; line=$(grep '^RESULT ' <<<"$out" || true)
  [[ -n $line ]] || { printf '%s\n' "$out" >&2; die "$name: $LOADGEN printed no result"; }
  # shellcheck disable=SC2086
  local requests duration_us p50_us p99_us sock_errors status_errors
  eval "$(sed 's/^RESULT //' <<<"$line")"
  awk -v n="$name" -v r="$round" -v req="$requests" -v dur="$duration_us" \
      -v p50="$p50_us" -v p99="$p99_us" -v se="$sock_errors" -v st="$status_errors" \
      -v dt="$((c1 - c0))" -v hz="$CLK_TCK" \
      -v b0="$b0" -v b1="$b1" -v l0="$l0" -v l1="$l1" -v acc="$((a1 - a0 - 1))" \
      -v rss="$rss" -v hwm="$hwm" 'BEGIN {
        split(b0, B0, " "); split(b1, B1, " "); split(l0, L0, " "); split(l1, L1, " ");
        rps = req / (dur / 1e6);
        cpu_us = dt * 1e6 / hz;
        cpureq = req > 0 ? cpu_us / req : 0;
        pcpu = 100 * cpu_us / dur;
        core0 = (B1[2] > B0[2]) ? 100 * (B1[1] - B0[1]) / (B1[2] - B0[2]) : 0;
        core1 = (L1[2] > L0[2]) ? 100 * (L1[1] - L0[1]) / (L1[2] - L0[2]) : 0;
        printf "%s\t%d\t%.1f\t%d\t%d\t%.2f\t%.1f\t%.1f\t%.1f\t%d\t%d\t%d\t%d\t%d\n",
          n, r, rps, p50, p99, cpureq, pcpu, core0, core1, se, st, acc, rss, hwm
      }' >>"$RESULTS"
  tail -1 "$RESULTS" | awk -F'\t' '{printf "[bench] round %s %-9s %10.0f req/s  p50 %6d us  p99 %6d us  %6.2f CPU us/req  proxy %5.1f%% cpu  core%s %5.1f%%  core%s %5.1f%%  errors %d/%d  new origin conns %d  RSS %.1f MiB  IPIs/req core%s %.2f core%s %.2f\n",
      $2, $1, $3, $4, $5, $6, $7, c0, $8, c1, $9, $10, $11, $12, $13 / 1024, c0, ($3 > 0 ? ip / ($3 * dur) : 0), c1, ($3 > 0 ? il / ($3 * dur) : 0)}' \
      c0="$PROXY_CPU" c1="$LOAD_CPU" ip="$((i1p - i0p))" il="$((i1l - i0l))" dur="$(awk -v d="$duration_us" 'BEGIN {print d / 1e6}')" >&2
  if ((FAIL_ON_STATUS)) && ((status_errors > 0)); then
    die "$name round $round: $status_errors non-2xx responses (a refused, unauthorized or failed request: the figures would not be the proxy's); FAIL_ON_STATUS=0 only flags them"
  fi
  if [[ $name != direct ]] && tail -1 "$RESULTS" | awk -F'\t' '{exit !($8 - $7 > 10)}'; then
    log "WARNING: $name round $round: >10% of core $PROXY_CPU went to processes other than the proxy"
    NOISY+=("$name/$round")
  fi
}
NOISY=()

if [[ $PROTO == h2 ]]; then
  log "h2load: ${H2LOAD[*]} -D $DURATION --log-file=h2load.log URL (warm-up -D $WARMUP); rounds=$ROUNDS"
else
  log "wrk: ${WRK[*]} -d$DURATION (warm-up -d$WARMUP) -s report.lua URL; rounds=$ROUNDS"
fi
for ((round = 1; round <= ROUNDS; round++)); do
  for name in "${ACTIVE[@]}"; do run_one "$name" "$round"; done
done

# Gatehouse variants with metrics on count every response by status class,
# and every rate-limit decision: after the rounds, every decision must have
# been "allowed". Their access log (when on) has each status: none may be
# other than 2xx, except 499, the requests the load generator abandons when
# a run ends (h2load leaves up to CONNS x STREAMS in flight); wrk alone
# counts only 4xx/5xx as errors, so this also catches a 3xx.
METRICS_NOTES=()
for name in "${ACTIVE[@]}"; do
  [[ -n ${ADMIN[$name]:-} ]] || continue
  counts=$(curl -s "http://${ADMIN[$name]}/metrics" | awk '
    /^gatehouse_http_requests_total\{/ { if ($0 ~ /code="2xx"/) ok += $NF; else bad += $NF }
    /^gatehouse_ratelimit_decisions_total\{/ { if ($0 ~ /result="allowed"/) al += $NF; else lim += $NF }
    END { printf "%.0f %.0f %.0f %.0f\n", ok, bad, al, lim }')
  read -r m_ok m_bad m_allowed m_limited <<<"$counts"
  ((m_ok > 0)) || die "$name: its /metrics on ${ADMIN[$name]} counted no 2xx response"
  note="$name's metrics: $m_ok responses 2xx, $m_bad other"
  grep -q '^rate_limits:' "$TMP/$name.yaml" && note+="; rate limit: $m_allowed allowed, $m_limited limited"
  bad=$m_bad
  alog=$LOG_DIR/$name-access.log
  if [[ -f $alog ]]; then
    statuses=$(grep -o '"status":[0-9]*' "$alog" | awk -F: '{c[$2]++} END {for (s in c) printf "%s%s×%d", (n++ ? ", " : ""), s, c[s]}')
    bad=$(grep -o '"status":[0-9]*' "$alog" | awk -F: '$2 !~ /^2/ && $2 != 499 {b++} END {print b + 0}')
    note+="; its access log: status $statuses"
    [[ $statuses == *499* ]] && note+=" (499: requests the load generator abandoned at the end of a run)"
  fi
  log "$note"
  METRICS_NOTES+=("$note.")
  if ((FAIL_ON_STATUS)) && ((bad > 0 || m_limited > 0)); then die "$name: non-2xx responses or limited requests during the run ($note)"; fi
done

# nginx-full's access log (flushed at least every second): its statuses,
# by the same rule.
nlog=$LOG_DIR/nginx-full-access.log
if [[ -n ${PID[nginx-full]:-} && -f $nlog ]]; then
  statuses=$(grep -o '"status":[0-9]*' "$nlog" | awk -F: '{c[$2]++} END {for (s in c) printf "%s%s×%d", (n++ ? ", " : ""), s, c[s]}')
  bad=$(grep -o '"status":[0-9]*' "$nlog" | awk -F: '$2 !~ /^2/ && $2 != 499 {b++} END {print b + 0}')
  note="nginx-full's access log: status $statuses"
  log "$note"
  METRICS_NOTES+=("$note.")
  if ((FAIL_ON_STATUS)) && ((bad > 0)); then die "nginx-full: non-2xx responses during the run ($note)"; fi
fi

# ---------------------------------------------------------------- report --
cmdline="ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS THREADS=$THREADS"
[[ $PROTO == h2 ]] && cmdline="PROTO=h2 $cmdline STREAMS=$STREAMS"
[[ $HEADERS == browser ]] && cmdline="HEADERS=browser $cmdline"
[[ $PROTO == h2 && $TLS13_CIPHERS != TLS_AES_128_GCM_SHA256 ]] && cmdline+=" TLS13_CIPHERS=$TLS13_CIPHERS"
[[ $PROXIES != "$DEFAULT_PROXIES" ]] && cmdline+=" PROXIES=\"$PROXIES\""
cmdline+=" bash bench/run.sh"

# medians per proxy: name rps p50 p99 cpureq pcpu core0 core1 errors
awk -F'\t' '
  function median(s,   a, n, i, j, t) {
    n = split(s, a, " ");
    for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  { for (k = 3; k <= 9; k++) v[$1, k] = v[$1, k] " " $k; v[$1, 13] = v[$1, 13] " " $13; if ($14 > hwm[$1]) hwm[$1] = $14
    err[$1] += $10 + $11; if (!($1 in seen)) { seen[$1] = 1; order[++m] = $1 } }
  END { for (i = 1; i <= m; i++) { n = order[i]; printf "%s", n; for (k = 3; k <= 9; k++) printf "\t%s", median(v[n, k]); printf "\t%d\t%s\t%d\n", err[n], median(v[n, 13]), hwm[n] } }
' "$RESULTS" >"$TMP/medians.tsv"

for name in "${ACTIVE[@]}"; do printf '%s\t%s\n' "$name" "${VERSION[$name]}"; done >"$TMP/versions.tsv"
# PROTO=both: name version rps p50 p99 cpureq pcpu errors rss hwm (KiB)
if [[ -n $SUMMARY_OUT ]]; then
  awk -F'\t' -v OFS='\t' 'FNR == NR { ver[$1] = $2; next } { print $1, ver[$1], $2, $3, $4, $5, $6, $9, $10, $11 }' \
    "$TMP/versions.tsv" "$TMP/medians.tsv" >"$SUMMARY_OUT"
fi

{
  if [[ $PROTO == h2 ]]; then
  echo "### Gatehouse vs nginx, HAProxy, Caddy: HTTPS + HTTP/2 (loopback, 1 core per proxy)"
  echo
  echo "Command: \`$cmdline\`  "
  echo "Load: \`taskset -c $LOAD_CPU h2load -c $CONNS -m $STREAMS -t $THREADS --tls13-ciphers=$TLS13_CIPHERS -D $DURATION --log-file=h2load.log https://127.0.0.1:PORT/bench\` ($CONNS TLS connections kept for the whole run, $STREAMS streams each, so $((CONNS * STREAMS)) requests in flight; ${WARMUP} warm-up run before each run), $ROUNDS interleaved rounds, median shown. Latency percentiles from h2load's per-request log.  "
  echo "Origin: nginx ${VERSION[nginx]:-$(nginx -v 2>&1 | sed 's/.*version: //')}, plain HTTP/1.1, 1 worker, fixed ${BODY_BYTES}-byte body, pinned to core $LOAD_CPU with h2load. Proxies: one process/worker/thread each (GOMAXPROCS=1 for Go), pinned to core $PROXY_CPU; TLS 1.3 only, one self-signed ECDSA P-256 certificate, HTTP/2 by ALPN to the client; plain HTTP/1.1 to the origin with upstream keep-alive, idle pools sized $POOL; access logs off.  "
  else
  echo "### Gatehouse vs nginx, HAProxy, Caddy (loopback, 1 core per proxy)"
  echo
  echo "Command: \`$cmdline\`  "
  echo "Load: \`taskset -c $LOAD_CPU wrk -t$THREADS -c$CONNS -d$DURATION -s report.lua http://127.0.0.1:PORT/bench\` (keep-alive; ${WARMUP} warm-up before each run), $ROUNDS interleaved rounds, median shown.  "
  echo "Origin: nginx ${VERSION[nginx]:-$(nginx -v 2>&1 | sed 's/.*version: //')}, 1 worker, fixed ${BODY_BYTES}-byte body, pinned to core $LOAD_CPU with wrk. Proxies: one process/worker/thread each (GOMAXPROCS=1 for Go), pinned to core $PROXY_CPU, upstream keep-alive on, access logs off.  "
  fi
  echo "Machine: $(nproc --all) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), Linux $(uname -r), $(date -u +%Y-%m-%d)."
  echo
  echo "| proxy | version | req/s | p50 latency | p99 latency | proxy CPU per request | req/s vs nginx | p50 vs nginx | p99 vs nginx | CPU/req vs nginx | proxy core busy | RSS | RSS vs nginx | peak RSS |"
  echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
  awk -F'\t' '
    function us(x) { return (x >= 1000) ? sprintf("%.2f ms", x / 1000) : sprintf("%d µs", x) }
    function ratio(a, b) { return (b > 0) ? sprintf("%.2f×", a / b) : "n/a" }
    FNR == NR { ver[$1] = $2; next }
    function mib(k) { return sprintf("%.1f MiB", k / 1024) }
    { n++; name[n] = $1; rps[n] = $2; p50[n] = $3; p99[n] = $4; cpu[n] = $5; pcpu[n] = $6; err[n] = $9
      rss[n] = $10; hwm[n] = $11
      if ($1 == "nginx") r = n }
    END {
      for (i = 1; i <= n; i++) {
        flag = err[i] > 0 ? sprintf(" (%d errors!)", err[i]) : ""
        if (name[i] == "direct") {
          printf "| direct to origin | %s | %.0f%s | %s | %s | — | %s | %s | %s | — | — | — | — | — |\n",
            ver[name[i]], rps[i], flag, us(p50[i]), us(p99[i]),
            r ? ratio(rps[i], rps[r]) : "n/a", r ? ratio(p50[i], p50[r]) : "n/a", r ? ratio(p99[i], p99[r]) : "n/a"
          continue
        }
        printf "| %s | %s | %.0f%s | %s | %s | %.2f µs | %s | %s | %s | %s | %.0f%% | %s | %s | %s |\n",
          name[i], ver[name[i]], rps[i], flag, us(p50[i]), us(p99[i]), cpu[i],
          r ? ratio(rps[i], rps[r]) : "n/a", r ? ratio(p50[i], p50[r]) : "n/a",
          r ? ratio(p99[i], p99[r]) : "n/a", r ? ratio(cpu[i], cpu[r]) : "n/a", pcpu[i],
          mib(rss[i]), r ? ratio(rss[i], rss[r]) : "n/a", mib(hwm[i])
      }
    }' "$TMP/versions.tsv" "$TMP/medians.tsv"
  for name in $PROXIES; do
    [[ -n ${SKIPPED[$name]:-} ]] && echo "| $name | — | skipped: ${SKIPPED[$name]} | | | | | | | | | | | |"
  done
  echo
  if [[ $PROTO == h2 ]]; then
    if (($(cut -f2 "$TLSINFO" | sort -u | wc -l) == 1)); then
      echo "Negotiated by h2load with every proxy: $(cut -f2 "$TLSINFO" | head -1)."
    else
      echo "Negotiated by h2load: $(sort -u "$TLSINFO" | awk -F'\t' '{printf "%s%s: %s", (NR > 1 ? "; " : ""), $1, $2}')."
    fi
    echo
  fi
  echo "Ratios: >1× means more req/s, more latency, more CPU or more memory than nginx. \"Proxy core busy\" is the proxy's CPU time over wall time: ~100% means the proxy was the bottleneck; lower means $LOADGEN/origin (core $LOAD_CPU) was. RSS: VmRSS from /proc/<pid>/status summed over the proxy's process tree (nginx: master + worker), at the end of each measured run, median over rounds; peak RSS: VmHWM (each process's high-water mark since it started, sanity check and warm-ups included) summed the same way, the largest over rounds."
  ((${#METRICS_NOTES[@]})) && echo "Checked after the rounds: ${METRICS_NOTES[*]}"
  if [[ $PROTO == h2 ]]; then
    [[ $DIRECT == 1 ]] && echo "\"Direct to origin\" is h2load against the origin's own TLS + HTTP/2 listener, no proxy. Core $LOAD_CPU then also does the server side of TLS and HTTP/2, which it does not with a proxy in front, so this is a lower bound of what h2load + origin can serve; a proxy near or above it is limited by the load side."
    echo "Latency is measured at $((CONNS * STREAMS)) requests in flight, so mean latency ≈ $((CONNS * STREAMS)) / req/s."
  else
  [[ $DIRECT == 1 ]] && echo "\"Direct to origin\" is wrk against the origin with no proxy: the most core $LOAD_CPU (wrk + origin) can serve; a proxy close to it is limited by the load side, not by itself."
  fi
  echo
  echo "Other load before the run: core $PROXY_CPU ${IDLE_P}% busy, core $LOAD_CPU ${IDLE_L}% busy.${NOISY[*]:+ Runs where other processes took >10% of the proxy core: ${NOISY[*]}.}"
  echo
  echo "<details><summary>Per-round results</summary>"
  echo
  echo "| round | proxy | req/s | p50 | p99 | CPU µs/req | proxy CPU % | core $PROXY_CPU busy % | core $LOAD_CPU busy % | errors | new origin conns |"
  echo "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
  sort -t$'\t' -k2,2n -s "$RESULTS" | awk -F'\t' '$1 == "direct" {printf "| %d | direct to origin | %.0f | %d µs | %d µs | — | — | %.1f | %.1f | %d | %d |\n", $2, $3, $4, $5, $8, $9, $10 + $11, $12; next} {printf "| %d | %s | %.0f | %d µs | %d µs | %.2f | %.1f | %.1f | %.1f | %d | %d |\n", $2, $1, $3, $4, $5, $6, $7, $8, $9, $10 + $11, $12}'
  echo
  if [[ $PROTO == h2 ]]; then
  echo "\"New origin conns\": connections the origin accepted during the measured run (its stub_status). Up to about $((CONNS * STREAMS)) is the pool refilling: when h2load stops, the $((CONNS * STREAMS)) requests still in flight are abandoned, and a proxy may drop the upstream connections they were on. Thousands would mean no reuse. The direct row shows h2load's own $CONNS connections."
  else
  echo "\"New origin conns\": connections the origin accepted during the measured run (its stub_status). Up to about $CONNS is the pool refilling: when wrk stops, requests still in flight are aborted, and a proxy may drop the upstream connections they were on. Thousands would mean no reuse. The direct row shows wrk's own $CONNS connections."
  fi
  echo
  echo "</details>"
}
