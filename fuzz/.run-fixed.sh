#!/usr/bin/env bash
# Runs the cargo-fuzz targets: each for SECONDS (default 60), JOBS at a time (default 1),
# its corpus growing in fuzz/corpus/TARGET (not committed) from the seeds in fuzz/seeds/TARGET.
# A crash or a time-out stops the run: the input is in fuzz/artifacts/TARGET/, and the summary
# line of every target (executions, coverage, corpus) is printed.
#
# Usage: fuzz/run.sh [-t SECONDS] [-j JOBS] [--fast-build] [TARGET...]   (default: every target,
#        one at a time)
#   --fast-build: unoptimized, without AddressSanitizer (Rust code is memory-safe; the build takes
#                 a third of the time) — what .ci/run's bounded smoke run uses.
# Needs the nightly toolchain and cargo-fuzz (`cargo +nightly install cargo-fuzz --locked`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

SECONDS_EACH=60
JOBS=1
BUILD=(-O)
PROFILE=release
TARGETS=()
while (($#)); do
    case $1 in
        -t) SECONDS_EACH=$2; shift 2 ;;
        -j) JOBS=$2; shift 2 ;;
        --fast-build) BUILD=(--dev --sanitizer none); PROFILE=debug; shift ;;
        -*) echo "usage: $0 [-t SECONDS] [-j JOBS] [--fast-build] [TARGET...]" >&2; exit 2 ;;
        *) TARGETS+=("$1"); shift ;;
    esac
done
((${#TARGETS[@]})) || mapfile -t TARGETS < <(cargo +nightly fuzz list)

# Built once; the binaries then run as built, whatever changes in the sources meanwhile.
cargo +nightly fuzz build "${BUILD[@]}" >&2
BIN_DIR=${CARGO_TARGET_DIR:-target}/$(rustc +nightly -vV | sed -n 's/^host: //p')/$PROFILE
# run_one TARGET: runs it; prints its summary line; fails with the crash's log on a finding.
run_one() {
    local t=$1 log
    mkdir -p "corpus/$t" "artifacts/$t"
    log=$(mktemp)
    if ! "$BIN_DIR/$t" -artifact_prefix="artifacts/$t/" -max_total_time="$SECONDS_EACH" -timeout=10 \
        -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 "corpus/$t" "seeds/$t" >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "FAILED: $t (input in fuzz/artifacts/$t/)" >&2
        rm -f "$log"
        return 1
    fi
    local runs last cov ft
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo '?')
    ft=$(grep -oE 'ft: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo '?')
    echo "$t: ${SECONDS_EACH} s, $runs executions, coverage $cov edges ($ft features), corpus $(ls "corpus/$t" | wc -l) inputs, no crash"
    rm -f "$log"
}

# JOBS targets at a time.
failed=0
pids=()
for t in "${TARGETS[@]}"; do
    echo "# $t: ${SECONDS_EACH} s" >&2
    run_one "$t" &
    pids+=($!)
    if ((${#pids[@]} >= JOBS)); then
        wait "${pids[0]}" || failed=1
        pids=("${pids[@]:1}")
    fi
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
exit "$failed"
