#!/usr/bin/env bash
# Issue 8: Relentless side by side with graphile-worker, BullMQ and the storage ceilings.
#
#   bench/run.sh [--quick] [--all] [--runs N] [--workloads "W0 W1 W2 W3 W4 paths"] [--systems "a b …"]
#                [--out DIR] [--autovacuum-as-found]
#
# Installs the peers (bench/peers/package.json, pinned) and matplotlib into a throwaway folder
# ($TMPDIR/relentless-peers), starts two private redis-servers (AOF everysec on 6390, no
# persistence on 6391; the shared 6379 is left alone), runs the storage ceilings and the
# workloads, and writes report.md + w1-lateness.png into the results folder
# (default bench/out/peers-<date>[-quick], git-ignored). PostgreSQL: RELENTLESS_TEST_POSTGRES
# or postgres://postgres@127.0.0.1:5432/postgres (a fresh database per run, dropped after).
#
# --quick divides every count and duration by 20 (W1: 50,000 touches over 3 s).
# Which systems run: by default those each target of issue 8 is about, so that the full-size
# run fits in 2 hours on 2 vCPUs (W1: Relentless on SQLite, graphile-worker with its default
# poll, BullMQ with AOF; W2 and W3: Relentless on SQLite; W4: Relentless on PostgreSQL with 2
# workers; W0: Relentless on SQLite). --all runs every system in every workload (the whole
# matrix: about 6.5 hours at full size, since W2–W4 last 10 minutes per system whatever the
# machine); --systems picks them by name.
# W0 (ours, not issue 8's): the 1,000,000 touches all due at once, each Relentless system's
# drain rate, the figure to hold against the storage ceilings ("within 2×").
# "paths" is the product paths, Relentless on SQLite only (relentless-bench at 1,000,000 leads,
# medians of 3): POST /api/v1/leads → first text at a Twilio-speaking server under a steady
# 200 leads/s, open pixel → SSE event idle and under wrk, the leads list's first page.
# PostgreSQL runs with autovacuum on, as it ships: a server found with it off (this project's
# CI machine has it off) gets it turned on for the run (ALTER SYSTEM, reload) and put back as
# found at the end; --autovacuum-as-found leaves the server as it is.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
QUICK=0
RUNS=""
WORKLOADS="W0 W1 W2 W3 W4 paths"
SYSTEMS=""
ALL_SYSTEMS=0
OUT=""
AV_AS_FOUND=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --runs) RUNS=$2; shift ;;
    --workloads) WORKLOADS=$2; shift ;;
    --systems) SYSTEMS=$2; shift ;;
    --all) ALL_SYSTEMS=1 ;;
    --out) OUT=$2; shift ;;
    --autovacuum-as-found) AV_AS_FOUND=1 ;;
    -h|--help) sed -n 2,28p "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

STARTED=$(date +%s)
S=$([ $QUICK = 1 ] && echo 20 || echo 1)
MODE=$([ $QUICK = 1 ] && echo quick || echo full)
# W0, W1 and paths: medians of 3 in a full run, 1 in a quick one; W2–W4: one run each.
W1_RUNS=${RUNS:-$([ $QUICK = 1 ] && echo 1 || echo 3)}
OUT=${OUT:-$ROOT/bench/out/peers-$(date -u +%Y%m%d-%H%M%S)$([ $QUICK = 1 ] && echo -quick)}
TMP=${TMPDIR:-/tmp}/relentless-peers
PG=${RELENTLESS_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}
# psql and pgbench reach the same server as the harness (host, port, user, password of $PG).
read -r PGH PGP PGU PGDB PGPW < <(python3 -c 'import sys, urllib.parse as u; x = u.urlsplit(sys.argv[1])
print(x.hostname or "127.0.0.1", x.port or 5432, u.unquote(x.username or "postgres"), x.path.lstrip("/") or "postgres", u.unquote(x.password or "-"))' "$PG")
PGHOST_ARGS=(-h "$PGH" -p "$PGP" -U "$PGU")
[ "$PGPW" = - ] || export PGPASSWORD=$PGPW
AOF_PORT=6390
NOP_PORT=6391
mkdir -p "$OUT" "$TMP"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# ---- build and install -------------------------------------------------------------------
log "building the Relentless bench binary (release)"
(cd "$ROOT" && cargo build --release -q -p relentless-bench --bin peers --bin relentless-bench)
BIN=$ROOT/target/release/peers
if ! cmp -s "$ROOT/bench/peers/package.json" "$TMP/package.json" || [ ! -d "$TMP/node_modules" ]; then
  log "installing the peers from npm into $TMP"
  cp "$ROOT/bench/peers/package.json" "$TMP/package.json"
  (cd "$TMP" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
cp "$ROOT"/bench/peers/*.js "$TMP/"
if [ ! -x "$TMP/venv/bin/python" ] || ! "$TMP/venv/bin/python" -c "import matplotlib" 2>/dev/null; then
  log "installing matplotlib into $TMP/venv"
  python3 -m venv "$TMP/venv"
  "$TMP/venv/bin/pip" install -q matplotlib==3.10.7
fi

# ---- private redis servers ---------------------------------------------------------------
start_redis() { # port dir extra…
  local port=$1 dir=$2; shift 2
  mkdir -p "$dir"; rm -f "$dir"/*.aof "$dir"/appendonlydir/* 2>/dev/null || true
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" "$@"
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "redis on $port did not start" >&2; exit 1
}
stop_redis() { for d in "$TMP/redis-aof" "$TMP/redis-nop"; do
  [ -f "$d/redis.pid" ] && kill "$(cat "$d/redis.pid")" 2>/dev/null || true; done; }
pgq() { psql "${PGHOST_ARGS[@]}" -d "$PGDB" -Atc "$1"; }
# Autovacuum on for the run (see the top), and afterwards put back exactly as found: reset
# when the "off" came from a configuration file (ALTER SYSTEM's entry then goes), set off again
# when it came from ALTER SYSTEM itself; left alone when the server's command line sets it
# (which ALTER SYSTEM cannot override) or the role may not change it.
AV_RESTORE=""
restore_autovacuum() {
  [ -n "$AV_RESTORE" ] || return 0
  if pgq "$AV_RESTORE" >/dev/null && pgq "SELECT pg_reload_conf()" >/dev/null; then
    for _ in $(seq 50); do [ "$(pgq 'SHOW autovacuum')" = off ] && break; sleep 0.1; done
    log "PostgreSQL's autovacuum put back as found ($(pgq 'SHOW autovacuum'))"
  else
    log "could not put PostgreSQL's autovacuum back: run $AV_RESTORE"
  fi
}
cleanup() { stop_redis; restore_autovacuum || true; }
trap cleanup EXIT
if [ $AV_AS_FOUND = 0 ] && [ "$(pgq 'SHOW autovacuum')" = off ]; then
  restore=""
  case "$(pgq "SELECT source || ':' || COALESCE(sourcefile, '') FROM pg_settings WHERE name = 'autovacuum'")" in
    "command line:"*) log "PostgreSQL's autovacuum is off on the server's command line: running as found" ;;
    *postgresql.auto.conf) restore="ALTER SYSTEM SET autovacuum = off" ;;
    *) restore="ALTER SYSTEM RESET autovacuum" ;;
  esac
  if [ -n "$restore" ]; then
    AV_RESTORE=$restore # before the change: an interruption right after it still restores
    if pgq "ALTER SYSTEM SET autovacuum = on" >/dev/null; then
      pgq "SELECT pg_reload_conf()" >/dev/null || true
      for _ in $(seq 50); do [ "$(pgq 'SHOW autovacuum')" = on ] && break; sleep 0.1; done
    else
      AV_RESTORE=""
    fi
    if [ "$(pgq 'SHOW autovacuum')" = on ]; then
      log "PostgreSQL's autovacuum was off: on for this run, put back at the end"
    else
      log "could not turn PostgreSQL's autovacuum on (superuser needed?): running as found (off)"
    fi
  fi
fi
start_redis $AOF_PORT "$TMP/redis-aof" --appendonly yes --appendfsync everysec
start_redis $NOP_PORT "$TMP/redis-nop" --appendonly no

# ---- machine -----------------------------------------------------------------------------
cat >"$OUT/machine.json" <<EOF
{
  "mode": "$MODE (counts and durations ÷ $S)",
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "cpu": "$(nproc) × $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)",
  "memory": "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)",
  "kernel": "$(uname -sr)",
  "load average at start": "$(cut -d' ' -f1-3 /proc/loadavg)",
  "rustc": "$(rustc --version)",
  "node": "$(node --version)",
  "postgres": "$(pgq 'SHOW server_version') (fsync $(pgq 'SHOW fsync'), synchronous_commit $(pgq 'SHOW synchronous_commit'), autovacuum $(pgq 'SHOW autovacuum'), shared_buffers $(pgq 'SHOW shared_buffers'))",
  "redis": "$(redis-server --version | awk '{print $3}') (6390: appendonly yes, appendfsync everysec; 6391: no persistence)",
  "sqlite": "bundled by sqlx; Relentless: WAL, synchronous=NORMAL",
  "graphile-worker": "$(node -p "require('$TMP/node_modules/graphile-worker/package.json').version")",
  "bullmq": "$(node -p "require('$TMP/node_modules/bullmq/package.json').version")",
  "commit": "$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- crates bench || echo '+dirty')"
}
EOF

# ---- ceilings ----------------------------------------------------------------------------
CEIL_N=$((1000000 / S))
mkdir -p "$OUT/ceilings"
for sync in normal full; do
  log "ceiling: SQLite synchronous=$sync, $CEIL_N rows"
  "$BIN" sqlite-ceiling --n $CEIL_N --synchronous $sync --out "$TMP/ceiling" >/dev/null
  mv "$TMP/ceiling/ceiling.json" "$OUT/ceilings/sqlite-$sync.json"
done
CDB=relentless_ceiling_$$
pgq "DROP DATABASE IF EXISTS $CDB" >/dev/null; pgq "CREATE DATABASE $CDB" >/dev/null
PSQL=(psql "${PGHOST_ARGS[@]}" -d $CDB -q)
echo "INSERT INTO q (key, due, payload) SELECT gen_random_uuid()::text, now() - interval '1 second', repeat('x', 200) FROM generate_series(1, 1000);" >"$TMP/insert.sql"
echo "UPDATE q SET state = 1 WHERE id IN (SELECT id FROM q WHERE state = 0 AND due <= now() ORDER BY due LIMIT 500 FOR UPDATE SKIP LOCKED) RETURNING id, key, due;" >"$TMP/claim.sql"
for c in 1 2 4 8; do
  "${PSQL[@]}" -c "DROP TABLE IF EXISTS q; CREATE TABLE q (id bigserial PRIMARY KEY, key text NOT NULL UNIQUE, due timestamptz NOT NULL, state int NOT NULL DEFAULT 0, payload text NOT NULL); CREATE INDEX q_due ON q(due) WHERE state = 0;"
  ins=$(pgbench "${PGHOST_ARGS[@]}" -n -f "$TMP/insert.sql" -c 1 -t $((CEIL_N / 1000)) $CDB 2>&1 | awk '/^tps/ {print $3; exit}')
  "${PSQL[@]}" -c "VACUUM ANALYZE q"
  t=$((CEIL_N / 500 / c))
  log "ceiling: pgbench SKIP LOCKED claim, $c clients × $t transactions"
  tps=$(pgbench "${PGHOST_ARGS[@]}" -n -f "$TMP/claim.sql" -c $c -j $((c < 2 ? c : 2)) -t $t $CDB 2>&1 | awk '/^tps/ {print $3; exit}')
  left=$("${PSQL[@]}" -Atc "SELECT count(*) FROM q WHERE state = 0")
  echo "{\"system\": \"pgbench-c$c\", \"n\": $CEIL_N, \"clients\": $c, \"insert_per_sec\": $(echo "$ins * 1000" | bc), \"claim_rows_per_sec\": $(echo "$tps * 500" | bc), \"unclaimed_left\": $left}" >"$OUT/ceilings/pgbench-c$c.json"
done
pgq "DROP DATABASE $CDB" >/dev/null

# ---- workloads ---------------------------------------------------------------------------
# name  n  backlog  span_ms  gap_ms  kill_every_ms  grace_ms
declare -A WL=(
  [W0]="1000000 0 0 30000 0 600000"
  [W1]="1000000 0 60000 30000 0 120000"
  [W2]="1000000 0 600000 30000 0 120000"
  [W3]="100000 5000000 600000 30000 0 120000"
  [W4]="1000000 0 600000 30000 15000 60000"
)
# Which systems run which workload: by default those the targets are about (see the top;
# 1 h 37 min at full size on the 2-vCPU machine of BENCHMARKS.md), with --all every one.
ALL="relentless-sqlite relentless-postgres-1 relentless-postgres-2 relentless-postgres-4 graphile-default-poll graphile-poll-100ms bullmq-aof-everysec bullmq-no-persistence"
declare -A DEF=(
  [W0]="relentless-sqlite"
  [W1]="relentless-sqlite graphile-default-poll bullmq-aof-everysec"
  [W2]="relentless-sqlite"
  [W3]="relentless-sqlite"
  [W4]="relentless-postgres-2"
)
# W0 holds Relentless against the storage ceilings (the peers have no ceiling of their own
# here); W4 is about two worker processes, one of them killed.
declare -A EVERY=(
  [W0]="relentless-sqlite relentless-postgres-1 relentless-postgres-2 relentless-postgres-4"
  [W1]="$ALL" [W2]="$ALL" [W3]="$ALL"
  [W4]="relentless-postgres-2 graphile-default-poll graphile-poll-100ms bullmq-aof-everysec bullmq-no-persistence"
)
# Expected enqueue rate per system (/s): only sets when the first touch is due
# (planned end of the enqueue + the gap); report.md flags a run whose enqueue overran it.
# graphile-worker: `add_job` with a job key, 2,400–2,900 /s on the 2-vCPU AMD EPYC VM once its
# jobs table has statistics (graphile.js analyzes it after the first 1,000; 2026-12-06/07;
# ~3,700 on an Intel Xeon VM).
# Relentless on PostgreSQL: ~28,000 rows/s (one INSERT … RETURNING chain per 1,000; 2026-12-06).
declare -A EST=(
  [relentless-sqlite]=30000 [relentless-postgres-1]=25000 [relentless-postgres-2]=25000
  [relentless-postgres-4]=25000 [graphile-default-poll]=2400 [graphile-poll-100ms]=2400
  [bullmq-aof-everysec]=15000 [bullmq-no-persistence]=15000
)

run_one() { # workload system dir
  local w=$1 sys=$2 dir=$3
  read -r n backlog span gap kill grace <<<"${WL[$w]}"
  n=$((n / S)); backlog=$((backlog / S)); span=$((span / S)); gap=$((gap / S)); kill=$((kill / S))
  # The recovery timers of the systems are not scaled (BullMQ's 30 s stalled check, the
  # Relentless lease below); the grace period is long enough for them in both modes.
  grace=$([ "$w" = W4 ] && echo 45000 || echo $((grace / S > 90000 ? grace / S : 90000)))
  local est=${EST[$sys]}
  local common=(--n $n --backlog $backlog --span-ms $span --gap-ms $gap --est-rate $est --grace-ms $grace --out "$dir")
  local workers=2
  [ "$w" = W4 ] && common+=(--kill-every-ms $kill --sync)
  mkdir -p "$dir"
  case $sys in
    relentless-sqlite) "$BIN" relentless --url sqlite --workers 1 --system $sys --lease-ms $([ "$w" = W4 ] && echo 10000 || echo 60000) "${common[@]}" ;;
    relentless-postgres-*) "$BIN" relentless --url postgres --workers "${sys##*-}" --system $sys --lease-ms $([ "$w" = W4 ] && echo 10000 || echo 60000) "${common[@]}" ;;
    graphile-default-poll) node "$TMP/graphile.js" run --admin "$PG" --workers $workers --concurrency 10 --system $sys "${common[@]}" ;;
    graphile-poll-100ms) node "$TMP/graphile.js" run --admin "$PG" --workers $workers --concurrency 10 --poll-ms 100 --system $sys "${common[@]}" ;;
    bullmq-aof-everysec) node "$TMP/bullmq.js" run --redis $AOF_PORT --workers $workers --concurrency 10 --system $sys "${common[@]}" ;;
    bullmq-no-persistence) node "$TMP/bullmq.js" run --redis $NOP_PORT --workers $workers --concurrency 10 --system $sys "${common[@]}" ;;
    *) echo "unknown system $sys" >&2; return 1 ;;
  esac
  rm -f "$dir"/worker-*.log.empty 2>/dev/null || true
}

# The product paths (Relentless only): each run loads a fresh file, drains its backlog, then
# times the API and the paths with the router and dispatcher running (bench/README.md).
run_paths() {
  local dir=$OUT/paths
  mkdir -p "$dir"
  log "paths: $((1000000 / S)) leads, $W1_RUNS run(s) (load $(cut -d' ' -f1 /proc/loadavg))"
  "$ROOT/target/release/relentless-bench" --leads $((1000000 / S)) --due $((200000 / S)) \
    --runs "$W1_RUNS" --samples $((200 / (S > 1 ? 4 : 1))) --steady-secs $((S > 1 ? 5 : 30)) \
    --pixel-secs $((S > 1 ? 5 : 15)) --no-profile --dir "$TMP" --out "$dir/report.md" \
    >/dev/null || log "paths FAILED (see above)"
}

for w in $WORKLOADS; do
  if [ "$w" = paths ]; then run_paths; continue; fi
  runs=$([ "$w" = W1 ] || [ "$w" = W0 ] && echo "$W1_RUNS" || echo 1)
  if [ -n "$SYSTEMS" ]; then systems=$SYSTEMS
  elif [ $ALL_SYSTEMS = 1 ]; then systems=${EVERY[$w]}
  else systems=${DEF[$w]}; fi
  for sys in $systems; do
    for r in $(seq "$runs"); do
      log "$w $sys run $r/$runs (load $(cut -d' ' -f1 /proc/loadavg))"
      run_one "$w" "$sys" "$OUT/$w/$sys/run$r" || log "$w $sys run $r FAILED (see $OUT/$w/$sys/run$r)"
    done
  done
done

# ---- report ------------------------------------------------------------------------------
CHOSEN=$([ -n "$SYSTEMS" ] && echo "$SYSTEMS" || { [ $ALL_SYSTEMS = 1 ] && echo "all (--all)" || echo "each workload's default"; })
python3 - "$OUT/machine.json" "$STARTED" "$WORKLOADS" "$CHOSEN" <<'EOF'
import json, sys, time
p, started, workloads, systems = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
m = json.load(open(p))
m["load average at end"] = " ".join(open("/proc/loadavg").read().split()[:3])
s = int(time.time()) - started
m["whole run"] = f"{s // 3600} h {s % 3600 // 60:02d} min {s % 60:02d} s (build and installs included; workloads {workloads}; systems: {systems})"
json.dump(m, open(p, "w"), indent=2)
EOF
"$TMP/venv/bin/python" "$ROOT/bench/analyse.py" "$OUT" --plot "$OUT/w1-lateness.png" >"$OUT/report.md"
if [ -f "$OUT/paths/report.md" ]; then
  { echo; echo "## Product paths (Relentless on SQLite; relentless-bench, medians of $W1_RUNS)"; echo
    sed '1{/^# /d}' "$OUT/paths/report.md"; } >>"$OUT/report.md"
fi
cat "$OUT/report.md"
log "report: $OUT/report.md, plot: $OUT/w1-lateness.png"
