#!/usr/bin/env bash
# Runs the cargo-fuzz targets: each for SECONDS (default 60), one after the other, on one core,
# its corpus growing in fuzz/corpus/TARGET (not committed) from the seeds in fuzz/seeds/TARGET.
# A crash or a time-out stops the run: the input is in fuzz/artifacts/TARGET/, and the summary
# line of every target (executions, coverage, corpus) is printed.
#
# Usage: fuzz/run.sh [-t SECONDS] [--fast-build] [TARGET...]     (default: every target)
#   --fast-build: unoptimized, without AddressSanitizer (Rust code is memory-safe; the build takes
#                 a third of the time) — what .ci/run's bounded smoke run uses.
# Needs the nightly toolchain and cargo-fuzz (`cargo +nightly install cargo-fuzz --locked`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

SECONDS_EACH=60
BUILD=(-O)
TARGETS=()
while (($#)); do
    case $1 in
        -t) SECONDS_EACH=$2; shift 2 ;;
        --fast-build) BUILD=(--dev --sanitizer none); shift ;;
        -*) echo "usage: $0 [-t SECONDS] [--fast-build] [TARGET...]" >&2; exit 2 ;;
        *) TARGETS+=("$1"); shift ;;
    esac
done
((${#TARGETS[@]})) || mapfile -t TARGETS < <(cargo +nightly fuzz list)

cargo +nightly fuzz build "${BUILD[@]}" >&2
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log=$(mktemp)
    echo "# $t: ${SECONDS_EACH} s" >&2
    if ! cargo +nightly fuzz run "${BUILD[@]}" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "FAILED: $t (input in fuzz/artifacts/$t/)" >&2
        rm -f "$log"
        exit 1
    fi
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo '?')
    ft=$(grep -oE 'ft: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo '?')
    echo "$t: ${SECONDS_EACH} s, $runs executions, coverage $cov edges ($ft features), corpus $(ls "corpus/$t" | wc -l) inputs, no crash"
    rm -f "$log"
done
