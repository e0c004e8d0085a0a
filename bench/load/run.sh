#!/usr/bin/env bash
# Load on loopback against a release `relentless serve` on SQLite (issue 7, item 4).
#
#   cargo build --release -p relentless
#   bench/load/run.sh all              # knees, 60 s runs, kill -9 under load (~8 min)
#   bench/load/run.sh leads|opens|knee-leads|knee-opens|kill
#
# Environment: DURATION (s, default 60) for the steady runs, STEP (s, default 10) per knee
# step, CONNS_LEADS / CONNS_OPENS (connections of the steady runs), KNEE (connection counts).
# wrk (Debian's package) drives the load: 2 threads, as many connections as given; it shares
# the 2 cores with the server. Output: bench/out/load/*.txt and a summary on stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-target/release/relentless}
DURATION=${DURATION:-60}
STEP=${STEP:-10}
KNEE=${KNEE:-"1 2 4 8 16 32 64 128"}
CONNS_LEADS=${CONNS_LEADS:-64}
CONNS_OPENS=${CONNS_OPENS:-128}
PORT=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
OUT=bench/out/load
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
[ -x "$BIN" ] || { echo "build first: cargo build --release -p relentless" >&2; exit 1; }
DIR=$(mktemp -d /tmp/relentless-load.XXXXXX)
DB="sqlite://$DIR/load.db"
SERVER=
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
export RELENTLESS_LOG=warn RELENTLESS_PUBLIC_URL="http://127.0.0.1:$PORT"
# The leads live where it is daytime now: at night their first email (whose tracking tokens
# the opens load uses) would wait for the morning.
for z in America/New_York America/Los_Angeles Pacific/Honolulu Asia/Tokyo Asia/Kolkata Europe/Berlin America/Sao_Paulo; do
    h=$(TZ=$z date +%-H); if [ "$h" -ge 9 ] && [ "$h" -le 17 ]; then LEAD_TZ=$z; break; fi
done
export LEAD_TZ=${LEAD_TZ:-America/New_York}

start() {
    "$BIN" serve --listen "127.0.0.1:$PORT" --database-url "$DB" >>"$DIR/serve.log" 2>&1 &
    SERVER=$!
    for _ in $(seq 1 100); do
        kill -0 "$SERVER" 2>/dev/null || { echo "serve exited:" >&2; cat "$DIR/serve.log" >&2; exit 1; }
        curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "serve did not start:" >&2; cat "$DIR/serve.log" >&2; exit 1
}

TOKEN=$("$BIN" init --admin-email load@example.com --team-name Load --address "1 Main St" --database-url "$DB" | tail -n 1)
export TOKEN
start

# One wrk run: prints "conns rps p50 p99 errors non2xx" and keeps the full output.
run() { # name script conns duration [url]
    local name=$1 script=$2 c=$3 d=$4 url=${5:-http://127.0.0.1:$PORT/}
    local f="$OUT/$name-c$c-${d}s.txt"
    wrk -t2 -c"$c" -d"${d}s" --timeout 5s --latency -s "bench/load/$script" "$url" >"$f" 2>&1
    local rps p50 p99 err non2xx
    rps=$(awk '/^Requests\/sec/ {print $2}' "$f")
    p50=$(awk '/^ +50%/ {print $2}' "$f")
    p99=$(awk '/^ +99%/ {print $2}' "$f")
    err=$(awk '/Socket errors/ {gsub(",", ""); print $4+$6+$8+$10}' "$f")
    non2xx=$(awk '/Non-2xx/ {print $5}' "$f")
    printf "%-6s c=%-4s %9s req/s  p50 %-9s p99 %-9s socket errors %s  non-2xx %s\n" \
        "$name" "$c" "$rps" "$p50" "$p99" "${err:-0}" "${non2xx:-0}"
}

tokens() {
    sqlite3 "$DIR/load.db" "SELECT token FROM tracking ORDER BY random() LIMIT 5000" >"$DIR/tokens.txt"
    export TOKENS="$DIR/tokens.txt"
    [ -s "$TOKENS" ] || { echo "no tracking tokens yet: run leads first" >&2; exit 1; }
}

knee_leads() { for c in $KNEE; do RUN=k$c run leads leads.lua "$c" "$STEP"; done; }
leads() { RUN=steady run leads leads.lua "$CONNS_LEADS" "$DURATION"; }
knee_opens() { tokens; for c in $KNEE; do run opens opens.lua "$c" "$STEP"; done; }
opens() { tokens; run opens opens.lua "$CONNS_OPENS" "$DURATION"; }

# kill -9 under load: ids acknowledged with 201 are recorded by the client as they arrive;
# the server is killed mid-run and restarted; every acknowledged id must exist.
kill_under_load() {
    local ack="$DIR/acks"; mkdir -p "$ack"; rm -f "$ack"/*
    ACK_DIR="$ack" RUN=kill wrk -t2 -c"$CONNS_LEADS" -d20s --timeout 5s -s bench/load/leads.lua \
        "http://127.0.0.1:$PORT/" >"$OUT/kill-wrk.txt" 2>&1 &
    local w=$!
    sleep $((5 + RANDOM % 5))
    kill -9 "$SERVER"; wait "$SERVER" 2>/dev/null || true
    local killed_at; killed_at=$(date +%s.%N)
    wait "$w" || true
    start
    local acked missing
    acked=$(cat "$ack"/acked-*.txt | sort -u | wc -l)
    cat "$ack"/acked-*.txt | sort -u >"$DIR/acked.txt"
    sqlite3 "$DIR/load.db" "SELECT id FROM leads" | sort -u >"$DIR/present.txt"
    missing=$(comm -23 "$DIR/acked.txt" "$DIR/present.txt" | wc -l)
    local integrity; integrity=$(sqlite3 "$DIR/load.db" "PRAGMA integrity_check")
    echo "kill -9 under load: $acked leads acknowledged (201) before the kill; missing after restart: $missing; integrity_check: $integrity"
    [ "$missing" = 0 ] && [ "$integrity" = ok ]
}

case "${1:-all}" in
    leads) leads ;;
    opens) leads >/dev/null; opens ;;
    knee-leads) knee_leads ;;
    knee-opens) leads >/dev/null; knee_opens ;;
    kill) kill_under_load ;;
    all)
        echo "== lead creations: knee ($STEP s per step)"; knee_leads
        echo "== lead creations: steady ${DURATION} s"; leads
        echo "== tracking opens: knee ($STEP s per step)"; knee_opens
        echo "== tracking opens: steady ${DURATION} s"; opens
        echo "== kill -9 under load"; kill_under_load
        ;;
    *) echo "usage: $0 [all|leads|opens|knee-leads|knee-opens|kill]" >&2; exit 2 ;;
esac
