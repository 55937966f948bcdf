#!/usr/bin/env bash
# bench/split.sh — where a proxy's CPU per request goes, user space against
# kernel, and how many system calls it makes: Gatehouse (plain: no log,
# no metrics), nginx and bench/gofloor (the least a Go proxy can do per
# request), each in front of the same nginx origin, under the
# same wrk load as bench/run.sh's h1 run (proxy pinned to core 0, wrk and
# the origin to core 1).
#
#   bash bench/split.sh                   # 3 interleaved rounds of 8 s
#   ROUNDS=5 DURATION=10s bash bench/split.sh
#   STRACE=1 bash bench/split.sh          # then system calls per request (strace -c, a slow run)
#   BIN=/tmp/gatehouse bash bench/split.sh   # a prebuilt binary instead of this tree's
#
# user/sys: utime and stime of the proxy process (nginx: its one worker)
# over the run, from /proc/PID/stat, divided by the requests wrk completed.
# Under strace the proxy is slowed many times over: its counts per request
# are what to read, not its rate. See docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/origin.sh

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8s}
CONNS=${CONNS:-32}
STRACE=${STRACE:-0}
for cmd in nginx wrk taskset curl python3; do
  command -v "$cmd" >/dev/null || { echo "split.sh: needs $cmd (apt-get install -y nginx-light wrk)" >&2; exit 1; }
done
[[ $STRACE == 1 ]] && { command -v strace >/dev/null || { echo "split.sh: STRACE=1 needs strace" >&2; exit 1; }; }

TMP=$(mktemp -d /tmp/gatehouse-split.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ORIGIN=$(port) GH=$(port) NG=$(port) FL=$(port)

mkdir -p "$TMP/origin/logs" "$TMP/nginx/logs"
origin_conf "$TMP/origin" "$ORIGIN" "$(printf 'x%.0s' $(seq 100))" >"$TMP/origin/nginx.conf"
{ nginx_head "$TMP/nginx"; cat <<EOF
    upstream origin { server 127.0.0.1:$ORIGIN; keepalive 64; keepalive_requests 10000000; }
    server {
        listen 127.0.0.1:$NG backlog=4096;
        location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
EOF
} >"$TMP/nginx/nginx.conf"
cat >"$TMP/gatehouse.yaml" <<EOF
admin: { listen: "off" }
server: { listen: ["127.0.0.1:$GH"] }
upstreams: { origin: { targets: ["127.0.0.1:$ORIGIN"] } }
routes:
  - { name: all, match: { path_prefix: / }, upstream: origin }
EOF

BIN=${BIN:-}
if [[ -z $BIN ]]; then
  BIN=$TMP/gatehouse
  CGO_ENABLED=0 go build -o "$BIN" ./cmd/gatehouse
fi
taskset -c 1 nginx -p "$TMP/origin" -c "$TMP/origin/nginx.conf" -e "$TMP/origin/logs/error.log" &
PIDS+=($!)
taskset -c 0 nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/logs/error.log" &
NGMASTER=$!
PIDS+=($NGMASTER)
GOMAXPROCS=1 taskset -c 0 "$BIN" run -c "$TMP/gatehouse.yaml" >"$TMP/gatehouse.log" 2>&1 &
GHPID=$!
PIDS+=($GHPID)
CGO_ENABLED=0 go build -o "$TMP/gofloor" ./bench/gofloor
GOMAXPROCS=1 taskset -c 0 "$TMP/gofloor" -listen "127.0.0.1:$FL" -upstream "127.0.0.1:$ORIGIN" >"$TMP/gofloor.log" 2>&1 &
FLPID=$!
PIDS+=($FLPID)
for p in $GH $NG $FL; do
  for _ in $(seq 100); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/check" || true) == 200 ]] && break
    sleep 0.1
  done
done
NGPID=$(pgrep -P "$NGMASTER" | head -1)

# measure NAME PORT PID: one wrk run; prints "NAME requests user sys" (µs per request).
measure() {
  local u0 s0 u1 s1 reqs
  read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$3/stat")
  taskset -c 1 wrk -t1 -c"$CONNS" -d"$DURATION" "http://127.0.0.1:$2/bench" >"$TMP/$1.wrk"
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$3/stat")
  reqs=$(awk '/requests in/ {print $1}' "$TMP/$1.wrk")
  local tick; tick=$(getconf CLK_TCK)
  python3 -c 'import sys; n,t=int(sys.argv[2]),int(sys.argv[3]); u=(int(sys.argv[5])-int(sys.argv[4]))*1e6/t/n; s=(int(sys.argv[7])-int(sys.argv[6]))*1e6/t/n; print(f"{sys.argv[1]} {n} {u:.2f} {s:.2f}")' \
    "$1" "$reqs" "$tick" "$u0" "$u1" "$s0" "$s1"
}

echo "| round | proxy | requests | user µs/req | sys µs/req | total |"
echo "|--:|---|--:|--:|--:|--:|"
for r in $(seq "$ROUNDS"); do
  for p in "gatehouse $GH $GHPID" "nginx $NG $NGPID" "gofloor $FL $FLPID"; do
    # shellcheck disable=SC2086
    measure $p | awk -v r="$r" '{printf "| %s | %s | %s | %.2f | %.2f | %.2f |\n", r, $1, $2, $3, $4, $3+$4}'
  done
done

if [[ $STRACE == 1 ]]; then
  echo
  echo "System calls per request (strace -c, a 4 s wrk run each):"
  for p in "gatehouse $GH $GHPID" "nginx $NG $NGPID" "gofloor $FL $FLPID"; do
    set -- $p
    strace -c -f -p "$3" -o "$TMP/$1.strace" 2>/dev/null &
    ST=$!
    sleep 0.5
    taskset -c 1 wrk -t1 -c"$CONNS" -d4s "http://127.0.0.1:$2/bench" >"$TMP/$1.strace.wrk"
    kill -INT "$ST"; wait "$ST" 2>/dev/null || true
    reqs=$(awk '/requests in/ {print $1}' "$TMP/$1.strace.wrk")
    echo "$1 ($reqs requests):"
    awk -v n="$reqs" 'NR > 2 && NF >= 5 && $NF != "total" && $1 !~ /^-/ { printf "  %-14s %7.3f\n", $NF, $4 / n }' "$TMP/$1.strace" |
      sort -k2 -n -r | head -8
  done
fi
