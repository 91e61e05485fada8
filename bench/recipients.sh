#!/usr/bin/env bash
# What recipient validation costs at RCPT: `smtpbench rcpt` (MAIL, RCPT, RSET per transaction,
# S connections) against one gateway per mode, the same load, in the same run:
#
#   off      no validation (the reference)
#   list     `--recipient-validation list` with a 100,000-address recipient list; every RCPT is a
#            listed address (looked up in the snapshot)
#   verify   `--recipient-validation verify` against postfix's smtp-sink as the mailbox server,
#            the cache warmed by an untimed batch (one probe; every timed RCPT is a cache hit)
#
# Each mode runs ROUNDS times, the order rotating per round; the medians are compared. Target
# (issue 20): list/off and verify/off >= 0.9. Email authentication is off in every mode (its
# cost is bench/auth.sh's), so the RCPT path is all that is measured.
#
# Usage: bench/recipients.sh [-n TRANSACTIONS] [-s SESSIONS] [-r ROUNDS] [--no-write]
#        (binaries: target/release/{portcullis,smtpbench}, built if missing)
# Needs: postfix (smtp-sink). Uses only 127.0.0.x.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$PATH:/usr/sbin:/sbin"
N=40000
SESSIONS=20
ROUNDS=3
WRITE=1
while (($#)); do
    case $1 in
        -n) N=$2; shift 2 ;;
        -s) SESSIONS=$2; shift 2 ;;
        -r) ROUNDS=$2; shift 2 ;;
        --no-write) WRITE=; shift ;;
        *) echo "usage: $0 [-n TRANSACTIONS] [-s SESSIONS] [-r ROUNDS] [--no-write]" >&2; exit 2 ;;
    esac
done
command -v smtp-sink >/dev/null || { echo "FATAL: smtp-sink is not installed (package postfix)" >&2; exit 1; }
echo "# cargo build --release -p portcullis -p portcullis-smtpbench"
(cd "$ROOT" && cargo build --release -p portcullis -p portcullis-smtpbench) >&2
BIN=$ROOT/target/release/portcullis
BENCH=$ROOT/target/release/smtpbench

TMP=$(mktemp -d)
SERVER_PID= SINK_PID=
cleanup() {
    local pid
    for pid in "$SERVER_PID" "$SINK_PID"; do
        [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    [[ -n ${KEEP_TMP:-} ]] && echo "# kept $TMP" >&2 || rm -rf "$TMP"
}
trap cleanup EXIT
die() { echo "FATAL: $1" >&2; shift; for f in "$@"; do echo "----- $f" >&2; tail -n 30 "$f" >&2 || true; done; exit 1; }

# The mailbox server the verify mode asks: smtp-sink accepts every recipient.
SINK_PORT=$((20000 + RANDOM % 40000))
user=()
((EUID == 0)) && user=(-u root)
smtp-sink "${user[@]}" 127.0.0.31:"$SINK_PORT" 64 >"$TMP/sink.log" 2>&1 &
SINK_PID=$!
sleep 0.5
kill -0 "$SINK_PID" 2>/dev/null || die "smtp-sink did not start" "$TMP/sink.log"

# The recipient list: 100,000 addresses; the benchmark's RCPT is one in the middle.
{
    echo address
    for ((i = 0; i < 100000; i++)); do printf 'user%06d@contoso.com\n' "$i"; done
} >"$TMP/recipients.csv"
RCPT=user050000@contoso.com

# run MODE ROUND: a fresh gateway in MODE, warm-up, the timed batch; sets RATE and P99.
run() {
    local mode=$1 dir=$TMP/$1-$2
    mkdir -p "$dir"
    cat >"$dir/portcullis.toml" <<EOF
hostname = "mx.bench.test"
[smtp]
max_connections = 2000
max_connections_per_ip = 1000
max_connections_per_network = 2000
[auth]
enabled = false
EOF
    NO_COLOR=1 "$BIN" serve --config "$dir/portcullis.toml" --data-dir "$dir/data" \
        --smtp-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 >"$dir/server.out" 2>"$dir/server.log" &
    SERVER_PID=$!
    local port= admin= line
    for _ in $(seq 100); do
        if line=$(head -n 1 "$dir/server.out" 2>/dev/null) &&
            [[ $line =~ ^portcullis:\ SMTP\ on\ 127\.0\.0\.1:([0-9]+),\ admin\ API\ on\ (http://127\.0\.0\.1:[0-9]+), ]]; then
            port=${BASH_REMATCH[1]} admin=${BASH_REMATCH[2]}
            break
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || die "server exited during start-up" "$dir/server.log"
        sleep 0.1
    done
    [[ -n $port ]] || die "server did not start" "$dir/server.log"
    pc() { PORTCULLIS_SERVER=$admin PORTCULLIS_DATA_DIR=$dir/data "$BIN" "$@" >/dev/null || die "portcullis $*"; }
    pc tenant add contoso
    pc domain add contoso.com --tenant contoso
    case $mode in
        list)
            pc recipient import --tenant contoso --file "$TMP/recipients.csv"
            pc org set --tenant contoso --recipient-validation list ;;
        verify)
            pc tenant set contoso --route "smtp://127.0.0.31:$SINK_PORT"
            pc org set --tenant contoso --recipient-validation verify ;;
    esac
    local load=("$BENCH" rcpt --target "127.0.0.1:$port" --source 127.0.0.2 --sessions "$SESSIONS"
        --from a@example.org --rcpt "$RCPT")
    "${load[@]}" --attempts 2000 >"$dir/warmup.log" 2>&1 || die "$mode: warm-up failed" "$dir/warmup.log" "$dir/server.log"
    "${load[@]}" --attempts "$N" >"$dir/timed.log" 2>&1 || die "$mode: timed batch failed" "$dir/timed.log" "$dir/server.log"
    local out
    out=$(tail -n 1 "$dir/timed.log")
    [[ $out == *"rcpt_2xx=$N "* ]] || die "$mode: not every RCPT was accepted: $out" "$dir/server.log"
    RATE=$(sed -nE 's/.* rate=([0-9.]+) .*/\1/p' <<<"$out")
    P99=$(sed -nE 's/.* p99_us=([0-9]+) .*/\1/p' <<<"$out")
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

declare -A RATES P99S
MODES=(off list verify)
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
echo "# $N transactions (MAIL, RCPT, RSET) over $SESSIONS connections per run, after 2000 untimed; $ROUNDS rounds"
for ((round = 1; round <= ROUNDS; round++)); do
    for ((k = 0; k < 3; k++)); do
        mode=${MODES[$(((k + round - 1) % 3))]}
        run "$mode" "$round"
        RATES[$mode]+="$RATE "
        P99S[$mode]+="$P99 "
        echo "round $round $mode: $RATE RCPT/s, p99 ${P99} µs"
    done
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.1f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# shellcheck disable=SC2086
OFF=$(median ${RATES[off]}) LIST=$(median ${RATES[list]}) VERIFY=$(median ${RATES[verify]})
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
R_LIST=$(ratio "$LIST" "$OFF")
R_VERIFY=$(ratio "$VERIFY" "$OFF")
verdict() { awk -v r="$1" 'BEGIN { exit !(r >= 0.9) }' && echo met || echo "NOT met"; }
echo "off: median $OFF/s (${RATES[off]}); list: $LIST/s (${RATES[list]}); verify: $VERIFY/s (${RATES[verify]})"
echo "ratio list/off $R_LIST ($(verdict "$R_LIST")), verify/off $R_VERIFY ($(verdict "$R_VERIFY")); target >= 0.9"

[[ -n $WRITE ]] || exit 0
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
MEM=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
OUT=$ROOT/BENCHMARKS.md
{
    head -n 4 "$OUT"
    cat <<EOF
## Recipient validation: RCPT throughput (\`bench/recipients.sh\`)

Target (issue 20): RCPT throughput with \`list\` validation of a 100,000-address tenant, and with a
warm \`verify\` cache, at least 0.9 of validation off, in the same run.

- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $COMMIT
- Machine: $(nproc) cores ($CPU), $MEM, $(uname -sr); load average before: $LOAD
- Command: \`bench/recipients.sh -n $N -s $SESSIONS -r $ROUNDS\` (release build; \`smtpbench rcpt\`, lock-step
  MAIL/RCPT/RSET, from 127.0.0.2; 2000 untimed transactions first; a fresh gateway per run, the
  order of the modes rotating per round; verify asks postfix's smtp-sink, one probe in the warm-up)

| mode | RCPT/s (median) | rounds | p99 µs (rounds) | ratio to off |
|---|---|---|---|---|
| off | $OFF | ${RATES[off]}| ${P99S[off]}| 1 |
| list (100,000 addresses) | $LIST | ${RATES[list]}| ${P99S[list]}| $R_LIST ($(verdict "$R_LIST")) |
| verify (warm cache) | $VERIFY | ${RATES[verify]}| ${P99S[verify]}| $R_VERIFY ($(verdict "$R_VERIFY")) |

EOF
    tail -n +5 "$OUT"
} >"$OUT.new"
mv "$OUT.new" "$OUT"
echo "# written to $OUT"
