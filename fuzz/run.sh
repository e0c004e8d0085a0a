#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 20), one after another.
#
#   fuzz/run.sh            # CI: 20 s per target
#   fuzz/run.sh 600        # a longer run: 10 min per target
#   fuzz/run.sh 60 plan_toml template   # only some targets
#   FUZZ_BUILD=dev fuzz/run.sh 10       # CI: unoptimised build, much faster to compile
#
# Stable toolchain: libFuzzer's coverage instrumentation works without a sanitizer, so every
# run uses `--sanitizer none` (ASan needs nightly). Each target reads its committed seeds from
# seeds/TARGET and keeps what it learns in corpus/TARGET (gitignored). A crash stops the run,
# leaves the input in artifacts/TARGET/ and makes this script fail; turn it into a regression
# unit test in the crate that owns the parser, fix it, then add the input to seeds/.
# Prints one `FUZZ target=… runs=… seconds=… corpus=…` line per target for RELIABILITY.md.
set -euo pipefail
cd "$(dirname "$0")"

SECONDS_PER_TARGET="${1:-20}"
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(csv_import validate inbound_email twilio_form plan_toml template)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 1
fi

# The toolchain is stable. RUSTC_BOOTSTRAP lets rustc accept any -Z flag cargo-fuzz may pass
# (not yet checked whether one is needed here); our own code uses no nightly feature.
export RUSTC_BOOTSTRAP=1
# FUZZ_BUILD=dev (CI's short smoke run) builds without optimisation: a cold build of the
# engine and its dependencies takes a third of the release build's time on 2 cores, and 10 s
# per target still replays every seed and explores. Longer runs keep the release build.
if [ "${FUZZ_BUILD:-release}" = dev ]; then
    FUZZ_FLAGS=(--sanitizer none --dev)
else
    FUZZ_FLAGS=(--sanitizer none --release --debug-assertions)
fi

cargo fuzz build "${FUZZ_FLAGS[@]}"

summary=()
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log="artifacts/$t/last-run.log"
    # -rss_limit_mb bounds memory; -max_len bounds an input (MIME and CSV need some room).
    if ! cargo fuzz run "${FUZZ_FLAGS[@]}" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -rss_limit_mb=2048 \
        -timeout=10 -print_final_stats=1 -artifact_prefix="artifacts/$t/" >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "FUZZ target=$t FAILED: see fuzz/$log and fuzz/artifacts/$t/" >&2
        exit 1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    corpus=$(find "corpus/$t" -type f | wc -l)
    line="FUZZ target=$t runs=$runs seconds=$SECONDS_PER_TARGET corpus=$corpus"
    echo "$line"
    summary+=("$line")
done
printf '%s\n' "${summary[@]}" >"artifacts/summary.txt"
