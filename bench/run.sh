#!/usr/bin/env bash
# bench/run.sh — Gatehouse beside nginx, HAProxy and Caddy, in front of the
# same fast origin on loopback. See bench/README.md for the method.
#
#   bash bench/run.sh                      # defaults: 3 rounds x 10 s, 32 conns
#   ROUNDS=1 DURATION=3s WARMUP=1s bash bench/run.sh   # quick smoke run
#
# stdout: a markdown report (paste into docs/performance.md).
# stderr: progress and diagnostics.
set -euo pipefail

# ---------------------------------------------------------------- settings --
ROUNDS=${ROUNDS:-3}            # interleaved rounds; the report is the median
DURATION=${DURATION:-10s}      # measured wrk run per proxy per round
WARMUP=${WARMUP:-2s}           # unmeasured wrk run just before each measured one
CONNS=${CONNS:-32}             # wrk connections (keep-alive)
THREADS=${THREADS:-1}          # wrk threads
PROXIES=${PROXIES:-"nginx haproxy caddy goplain gatehouse gatehouse-obs gatehouse-auth gatehouse-rl"}
PROXY_CPU=${PROXY_CPU:-0}      # core the proxy is pinned to
LOAD_CPU=${LOAD_CPU:-1}        # core wrk and the origin are pinned to
BASE_PORT=${BASE_PORT:-18080}  # first port tried; busy ports are skipped
BODY_BYTES=${BODY_BYTES:-100}  # origin response body size
DIRECT=${DIRECT:-1}            # 1: also run wrk straight at the origin (ceiling of core $LOAD_CPU)
KEEP_TMP=${KEEP_TMP:-0}        # 1: keep the temp dir (configs, logs) at exit

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLK_TCK=$(getconf CLK_TCK)

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ------------------------------------------------------------ requirements --
need_pkgs=()
for pair in nginx:nginx-light haproxy:haproxy caddy:caddy wrk:wrk taskset:util-linux \
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

# --------------------------------------------------------- temp dir, trap --
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench.XXXXXX")
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

origin_accepts() {  # connections the origin has accepted so far
  curl -s "http://127.0.0.1:$STATUS_PORT/" | awk 'NR == 3 {print $1}'
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

# ---------------------------------------------------------------- origin --
BODY=$(head -c "$BODY_BYTES" /dev/zero | tr '\0' 'x')
free_port ORIGIN_PORT
free_port STATUS_PORT   # origin's stub_status: counts connections the proxies open
mkdir -p "$TMP/origin/logs"
cat >"$TMP/origin/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/origin/nginx.pid;
error_log $TMP/origin/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/origin/body;
    proxy_temp_path $TMP/origin/proxy;
    fastcgi_temp_path $TMP/origin/fastcgi;
    uwsgi_temp_path $TMP/origin/uwsgi;
    scgi_temp_path $TMP/origin/scgi;
    keepalive_timeout 75s;
    keepalive_requests 10000000;
    server {
        listen 127.0.0.1:$ORIGIN_PORT backlog=4096;
        location / {
            default_type text/plain;
            return 200 "$BODY";
        }
    }
    server {
        listen 127.0.0.1:$STATUS_PORT;
        location / { stub_status; }
    }
}
EOF

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
declare -A PORT=() PID=() VERSION=() SKIPPED=() HDR=()

start_nginx() {
  local port; free_port port; local d="$TMP/nginx"
  mkdir -p "$d/logs"
  cat >"$d/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    keepalive_timeout 75s;
    keepalive_requests 10000000;
    upstream origin {
        server 127.0.0.1:$ORIGIN_PORT;
        keepalive 64;
        keepalive_requests 10000000;
    }
    server {
        listen 127.0.0.1:$port backlog=4096;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
  start_bg nginx "$PROXY_CPU" nginx -p "$d" -c "$d/nginx.conf" -e "$d/logs/error.log"
  PORT[nginx]=$port PID[nginx]=$STARTED_PID
  VERSION[nginx]=$(nginx -v 2>&1 | sed 's/.*version: //')
}

start_haproxy() {
  local port; free_port port
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
    bind 127.0.0.1:$port
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

# start_gatehouse_as NAME ADMIN ACCESS [LIMIT]: gatehouse with the admin
# listener (and so metrics) on or off, the access log off or to a file, and
# optionally a per-client-IP rate limit on the route (set high enough that
# it never refuses: the cost of an allowed decision).
start_gatehouse_as() {
  local name=$1 admin=$2 access=$3 limit=${4:-} port admin_port limits="" route_limits=""
  build_gatehouse "$name" || return 1
  free_port port
  if [[ $admin == on ]]; then free_port admin_port; admin="127.0.0.1:$admin_port"; else admin=off; fi
  [[ $access == file ]] && access="$TMP/$name-access.log"
  if [[ $limit == per-ip ]]; then
    limits=$'rate_limits:\n  per-ip: { key: client_ip, rate: 10000000/s }'
    route_limits="    rate_limits: [per-ip]"
  fi
  cat >"$TMP/$name.yaml" <<EOF
admin:
  listen: "$admin"
server:
  listen: ["127.0.0.1:$port"]
log:
  access: "$access"
$limits
upstreams:
  origin:
    targets: ["127.0.0.1:$ORIGIN_PORT"]
routes:
  - name: all
    match: { path_prefix: / }
    upstream: origin
$route_limits
EOF
  GOMAXPROCS=1 start_bg "$name" "$PROXY_CPU" "$TMP/gatehouse" run -c "$TMP/$name.yaml"
  PORT[$name]=$port PID[$name]=$STARTED_PID
  VERSION[$name]=$(cd "$REPO_ROOT" && git describe --always --dirty 2>/dev/null || echo "uncommitted")
  return 0
}

# gatehouse-auth: like gatehouse, with every request carrying a bearer
# token the route verifies (cached after the first): the cost of auth.
start_gatehouse-auth() {
  local port d
  build_gatehouse gatehouse-auth || return 1
  free_port port
  d=$TMP/gatehouse-auth-keys; mkdir -p "$d"
  if ! (cd "$REPO_ROOT" && go run ./bench/mktoken -dir "$d" -issuer "http://127.0.0.1:$port") >"$d/token" 2>"$TMP/mktoken.log"; then
    SKIPPED[gatehouse-auth]="bench/mktoken failed"; return 1
  fi
  cat >"$TMP/gatehouse-auth.yaml" <<EOF
admin:
  listen: "off"
server:
  listen: ["127.0.0.1:$port"]
log:
  access: "off"
auth:
  issuers:
    bench: { issuer: "http://127.0.0.1:$port", jwks_uri: "http://127.0.0.1:$port/jwks.json", audience: bench }
upstreams:
  origin:
    targets: ["127.0.0.1:$ORIGIN_PORT"]
routes:
  - name: keys
    match: { path: /jwks.json }
    static: { root: "$d" }
  - name: all
    match: { path_prefix: / }
    upstream: origin
    auth: { roles: { any_of: [admin] } }
EOF
  GOMAXPROCS=1 start_bg gatehouse-auth "$PROXY_CPU" "$TMP/gatehouse" run -c "$TMP/gatehouse-auth.yaml"
  PORT[gatehouse-auth]=$port PID[gatehouse-auth]=$STARTED_PID
  VERSION[gatehouse-auth]=$(cd "$REPO_ROOT" && git describe --always --dirty 2>/dev/null || echo "uncommitted")
  HDR[gatehouse-auth]="Authorization: Bearer $(cat "$d/token")"
  return 0
}

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

start_goplain() {  # reference: plain httputil.ReverseProxy (bench/goplain)
  local port; free_port port
  if ! (cd "$REPO_ROOT" && CGO_ENABLED=0 go build -o "$TMP/goplain" ./bench/goplain) >"$TMP/goplain-build.log" 2>&1; then
    SKIPPED[goplain]="go build ./bench/goplain failed"; return 1
  fi
  GOMAXPROCS=1 start_bg goplain "$PROXY_CPU" "$TMP/goplain" -listen "127.0.0.1:$port" -upstream "127.0.0.1:$ORIGIN_PORT"
  PORT[goplain]=$port PID[goplain]=$STARTED_PID
  VERSION[goplain]="net/http $(go env GOVERSION)"
  return 0
}

sanity() {      # sanity NAME: 200 and the full body through the proxy
  local name=$1 got
  local hdr=()
  [[ -n ${HDR[$name]:-} ]] && hdr=(-H "${HDR[$name]}")
  got=$(curl -s "${hdr[@]}" -o "$TMP/$name.body" -w '%{http_code} %{size_download}' "http://127.0.0.1:${PORT[$name]}/bench" || true)
  [[ $got == "200 $BODY_BYTES" ]] && cmp -s "$TMP/$name.body" <(printf '%s' "$BODY") && return 0
  log "$name: sanity check failed: got '$got' (want '200 $BODY_BYTES')"
  return 1
}

ACTIVE=()
for name in $PROXIES; do
  case $name in nginx|haproxy|caddy|gatehouse|gatehouse-obs|gatehouse-auth|gatehouse-hdr|gatehouse-rl|goplain) ;; *) die "unknown proxy '$name'";; esac
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
    stop_tree "${PID[$name]}"
    continue
  fi
  log "$name ${VERSION[$name]} pid ${PID[$name]} on 127.0.0.1:${PORT[$name]} (cpus $(affinity_of "${PID[$name]}"))"
  ACTIVE+=("$name")
done
((${#ACTIVE[@]})) || die "no proxy started"
if [[ $DIRECT == 1 ]]; then   # reference row: no proxy at all
  PORT[direct]=$ORIGIN_PORT PID[direct]=$ORIGIN_PID VERSION[direct]="(no proxy)"
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
RESULTS=$TMP/results.tsv
: >"$RESULTS"

run_one() {     # run_one NAME ROUND
  local name=$1 round=$2
  local url="http://127.0.0.1:${PORT[$name]}/bench"
  local pid=${PID[$name]} out c0 c1 b0 b1 l0 l1 a0 a1
  local hdr=()
  [[ -n ${HDR[$name]:-} ]] && hdr=(-H "${HDR[$name]}")
  "${WRK[@]}" "${hdr[@]}" -d"$WARMUP" -s "$TMP/report.lua" "$url" >/dev/null 2>&1 || true
  kill -0 "$pid" 2>/dev/null || die "$name died during warm-up"
  a0=$(origin_accepts)
  c0=$(cpu_ticks "$pid"); b0=$(core_busy "$PROXY_CPU"); l0=$(core_busy "$LOAD_CPU")
  out=$("${WRK[@]}" "${hdr[@]}" -d"$DURATION" -s "$TMP/report.lua" "$url" 2>&1) || true
  c1=$(cpu_ticks "$pid"); b1=$(core_busy "$PROXY_CPU"); l1=$(core_busy "$LOAD_CPU")
  a1=$(origin_accepts)
  local line; line=$(grep '^RESULT ' <<<"$out" || true)
  [[ -n $line ]] || { printf '%s\n' "$out" >&2; die "$name: wrk printed no result"; }
  # shellcheck disable=SC2086
  local requests duration_us p50_us p99_us sock_errors status_errors
  eval "$(sed 's/^RESULT //' <<<"$line")"
  awk -v n="$name" -v r="$round" -v req="$requests" -v dur="$duration_us" \
      -v p50="$p50_us" -v p99="$p99_us" -v se="$sock_errors" -v st="$status_errors" \
      -v dt="$((c1 - c0))" -v hz="$CLK_TCK" \
      -v b0="$b0" -v b1="$b1" -v l0="$l0" -v l1="$l1" -v acc="$((a1 - a0 - 1))" 'BEGIN {
        split(b0, B0, " "); split(b1, B1, " "); split(l0, L0, " "); split(l1, L1, " ");
        rps = req / (dur / 1e6);
        cpu_us = dt * 1e6 / hz;
        cpureq = req > 0 ? cpu_us / req : 0;
        pcpu = 100 * cpu_us / dur;
        core0 = (B1[2] > B0[2]) ? 100 * (B1[1] - B0[1]) / (B1[2] - B0[2]) : 0;
        core1 = (L1[2] > L0[2]) ? 100 * (L1[1] - L0[1]) / (L1[2] - L0[2]) : 0;
        printf "%s\t%d\t%.1f\t%d\t%d\t%.2f\t%.1f\t%.1f\t%.1f\t%d\t%d\t%d\n",
          n, r, rps, p50, p99, cpureq, pcpu, core0, core1, se, st, acc
      }' >>"$RESULTS"
  tail -1 "$RESULTS" | awk -F'\t' '{printf "[bench] round %s %-9s %10.0f req/s  p50 %6d us  p99 %6d us  %6.2f CPU us/req  proxy %5.1f%% cpu  core%s %5.1f%%  core%s %5.1f%%  errors %d/%d  new origin conns %d\n",
      $2, $1, $3, $4, $5, $6, $7, c0, $8, c1, $9, $10, $11, $12}' c0="$PROXY_CPU" c1="$LOAD_CPU" >&2
  if [[ $name != direct ]] && tail -1 "$RESULTS" | awk -F'\t' '{exit !($8 - $7 > 10)}'; then
    log "WARNING: $name round $round: >10% of core $PROXY_CPU went to processes other than the proxy"
    NOISY+=("$name/$round")
  fi
}
NOISY=()

log "wrk: ${WRK[*]} -d$DURATION (warm-up -d$WARMUP) -s report.lua URL; rounds=$ROUNDS"
for ((round = 1; round <= ROUNDS; round++)); do
  for name in "${ACTIVE[@]}"; do run_one "$name" "$round"; done
done

# ---------------------------------------------------------------- report --
cmdline="ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS THREADS=$THREADS"
[[ $PROXIES != "nginx haproxy caddy goplain gatehouse gatehouse-obs gatehouse-auth gatehouse-rl" ]] && cmdline+=" PROXIES=\"$PROXIES\""
cmdline+=" bash bench/run.sh"

# medians per proxy: name rps p50 p99 cpureq pcpu core0 core1 errors
awk -F'\t' '
  function median(s,   a, n, i, j, t) {
    n = split(s, a, " ");
    for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  { for (k = 3; k <= 9; k++) v[$1, k] = v[$1, k] " " $k; err[$1] += $10 + $11; if (!($1 in seen)) { seen[$1] = 1; order[++m] = $1 } }
  END { for (i = 1; i <= m; i++) { n = order[i]; printf "%s", n; for (k = 3; k <= 9; k++) printf "\t%s", median(v[n, k]); printf "\t%d\n", err[n] } }
' "$RESULTS" >"$TMP/medians.tsv"

for name in "${ACTIVE[@]}"; do printf '%s\t%s\n' "$name" "${VERSION[$name]}"; done >"$TMP/versions.tsv"

{
  echo "### Gatehouse vs nginx, HAProxy, Caddy (loopback, 1 core per proxy)"
  echo
  echo "Command: \`$cmdline\`  "
  echo "Load: \`taskset -c $LOAD_CPU wrk -t$THREADS -c$CONNS -d$DURATION -s report.lua http://127.0.0.1:PORT/bench\` (keep-alive; ${WARMUP} warm-up before each run), $ROUNDS interleaved rounds, median shown.  "
  echo "Origin: nginx ${VERSION[nginx]:-$(nginx -v 2>&1 | sed 's/.*version: //')}, 1 worker, fixed ${BODY_BYTES}-byte body, pinned to core $LOAD_CPU with wrk. Proxies: one process/worker/thread each (GOMAXPROCS=1 for Go), pinned to core $PROXY_CPU, upstream keep-alive on, access logs off.  "
  echo "Machine: $(nproc --all) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), Linux $(uname -r), $(date -u +%Y-%m-%d)."
  echo
  echo "| proxy | version | req/s | p50 latency | p99 latency | proxy CPU per request | req/s vs nginx | p50 vs nginx | p99 vs nginx | CPU/req vs nginx | proxy core busy |"
  echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
  awk -F'\t' '
    function us(x) { return (x >= 1000) ? sprintf("%.2f ms", x / 1000) : sprintf("%d µs", x) }
    function ratio(a, b) { return (b > 0) ? sprintf("%.2f×", a / b) : "n/a" }
    FNR == NR { ver[$1] = $2; next }
    { n++; name[n] = $1; rps[n] = $2; p50[n] = $3; p99[n] = $4; cpu[n] = $5; pcpu[n] = $6; err[n] = $9
      if ($1 == "nginx") r = n }
    END {
      for (i = 1; i <= n; i++) {
        flag = err[i] > 0 ? sprintf(" (%d errors!)", err[i]) : ""
        if (name[i] == "direct") {
          printf "| direct to origin | %s | %.0f%s | %s | %s | — | %s | %s | %s | — | — |\n",
            ver[name[i]], rps[i], flag, us(p50[i]), us(p99[i]),
            r ? ratio(rps[i], rps[r]) : "n/a", r ? ratio(p50[i], p50[r]) : "n/a", r ? ratio(p99[i], p99[r]) : "n/a"
          continue
        }
        printf "| %s | %s | %.0f%s | %s | %s | %.2f µs | %s | %s | %s | %s | %.0f%% |\n",
          name[i], ver[name[i]], rps[i], flag, us(p50[i]), us(p99[i]), cpu[i],
          r ? ratio(rps[i], rps[r]) : "n/a", r ? ratio(p50[i], p50[r]) : "n/a",
          r ? ratio(p99[i], p99[r]) : "n/a", r ? ratio(cpu[i], cpu[r]) : "n/a", pcpu[i]
      }
    }' "$TMP/versions.tsv" "$TMP/medians.tsv"
  for name in $PROXIES; do
    [[ -n ${SKIPPED[$name]:-} ]] && echo "| $name | — | skipped: ${SKIPPED[$name]} | | | | | | | | |"
  done
  echo
  echo "Ratios: >1× means more req/s, more latency or more CPU than nginx. \"Proxy core busy\" is the proxy's CPU time over wall time: ~100% means the proxy was the bottleneck; lower means wrk/origin (core $LOAD_CPU) was."
  [[ $DIRECT == 1 ]] && echo "\"Direct to origin\" is wrk against the origin with no proxy: the most core $LOAD_CPU (wrk + origin) can serve; a proxy close to it is limited by the load side, not by itself."
  echo
  echo "Other load before the run: core $PROXY_CPU ${IDLE_P}% busy, core $LOAD_CPU ${IDLE_L}% busy.${NOISY[*]:+ Runs where other processes took >10% of the proxy core: ${NOISY[*]}.}"
  echo
  echo "<details><summary>Per-round results</summary>"
  echo
  echo "| round | proxy | req/s | p50 | p99 | CPU µs/req | proxy CPU % | core $PROXY_CPU busy % | core $LOAD_CPU busy % | errors | new origin conns |"
  echo "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
  sort -t$'\t' -k2,2n -s "$RESULTS" | awk -F'\t' '$1 == "direct" {printf "| %d | direct to origin | %.0f | %d µs | %d µs | — | — | %.1f | %.1f | %d | %d |\n", $2, $3, $4, $5, $8, $9, $10 + $11, $12; next} {printf "| %d | %s | %.0f | %d µs | %d µs | %.2f | %.1f | %.1f | %.1f | %d | %d |\n", $2, $1, $3, $4, $5, $6, $7, $8, $9, $10 + $11, $12}'
  echo
  echo "\"New origin conns\": connections the origin accepted during the measured run (its stub_status). Up to about $CONNS is the pool refilling: when wrk stops, requests still in flight are aborted, and a proxy may drop the upstream connections they were on. Thousands would mean no reuse. The direct row shows wrk's own $CONNS connections."
  echo
  echo "</details>"
}
