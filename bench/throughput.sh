#!/usr/bin/env bash
# End-to-end throughput of one feature, measured against the same gateway without it in the same
# run: the same DKIM-signed message, the same load (postfix's smtp-source, S parallel sessions, one
# message per connection), a fresh release-build gateway per run. Prints accepted messages per
# second (250 after DATA) for both modes and their ratio, and writes them into BENCHMARKS.md.
#
#   --compare auth   `[auth] enabled = true` (knot as DNS, cache warmed by an untimed batch) against
#                    `false`. Target: authentication costs under 25% of throughput (ratio >= 0.75).
#   --compare rules  1000 mail-flow rules on the tenant (none matching, so every one is evaluated),
#                    against none; authentication on in both. Target: within 20% (ratio >= 0.80).
#
# The spool and Maildir work (fsync, rename, unlink) dominates and varies from run to run, so each
# mode runs ROUNDS times, alternating which goes first, and the medians are compared.
#
# Usage: bench/throughput.sh --compare auth|rules [-n RULES] [-m MESSAGES] [-s SESSIONS] [-w WARMUP]
#            [-r ROUNDS] [--no-write]   (bench/auth.sh and bench/rules.sh are shortcuts)
#        (binary: target/release/portcullis, built if missing, or $PORTCULLIS_BIN)
# Needs: postfix (smtp-source), knot + knot-dnsutils, python3-dkim. Uses only 127.0.0.1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tests/interop/lib.sh
source "$ROOT/tests/interop/lib.sh"

MESSAGES=5000
SESSIONS=16
WARMUP=500
ROUNDS=3
WRITE=1
COMPARE=
NRULES=1000
while (($#)); do
    case $1 in
        --compare) COMPARE=$2; shift 2 ;;
        -n) NRULES=$2; shift 2 ;;
        -m) MESSAGES=$2; shift 2 ;;
        -s) SESSIONS=$2; shift 2 ;;
        -w) WARMUP=$2; shift 2 ;;
        -r) ROUNDS=$2; shift 2 ;;
        --no-write) WRITE=; shift ;;
        *) echo "usage: $0 --compare auth|rules [-n RULES] [-m MESSAGES] [-s SESSIONS] [-w WARMUP] [-r ROUNDS] [--no-write]" >&2; exit 2 ;;
    esac
done
case $COMPARE in
    auth) A_NAME="auth on" B_NAME="auth off" A_AUTH=true B_AUTH=false A_RULES=0 B_RULES=0 TARGET=0.75 ;;
    rules) A_NAME="$NRULES rules" B_NAME="no rules" A_AUTH=true B_AUTH=true A_RULES=$NRULES B_RULES=0 TARGET=0.80 ;;
    *) echo "usage: $0 --compare auth|rules ..." >&2; exit 2 ;;
esac

for tool in smtp-source knotd kdig dknewkey dkimsign; do
    command -v "$tool" >/dev/null || { echo "FATAL: $tool is not installed (packages: postfix knot knot-dnsutils python3-dkim)" >&2; exit 1; }
done
BIN=${PORTCULLIS_BIN:-$ROOT/target/release/portcullis}
if [[ -z ${PORTCULLIS_BIN:-} ]]; then
    echo "# cargo build --release -p portcullis"
    (cd "$ROOT" && cargo build --release -p portcullis) >&2
fi
[[ -x $BIN ]] || { echo "FATAL: $BIN not found" >&2; exit 1; }

TMP=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    stop_knot
    [[ -n ${KEEP_TMP:-} ]] && echo "# kept $TMP" >&2 || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
die() { echo "FATAL: $1" >&2; shift; for f in "$@"; do echo "----- $f" >&2; tail -n 30 "$f" >&2 || true; done; exit 1; }

# ---------------------------------------------------------------------------------------------
# DNS and the message: fabrikam.example signs with a 2048-bit RSA key, publishes SPF for 127.0.0.1
# and DMARC p=reject, so the authenticated run does SPF, DKIM, ARC (none) and DMARC on every message.
# ---------------------------------------------------------------------------------------------
mkdir -p "$TMP/dns"
(cd "$TMP" && dknewkey bench >/dev/null 2>&1) || die "dknewkey"
{
    echo '@ TXT "v=spf1 ip4:127.0.0.1 -all"'
    echo '_dmarc TXT "v=DMARC1; p=reject"'
    printf 'sel1._domainkey 3600 IN TXT %s\n' "$(txt_rdata "$(cat "$TMP/bench.dns")")"
} >"$TMP/dns/fabrikam.example.zone"
echo '@ TXT "v=spf1 ip4:127.0.0.1 -all"' >"$TMP/dns/contoso.com.zone"
start_knot "$TMP/knot" "$TMP"/dns/*.zone || die "knot did not start" "$TMP/knot/knot.log"

# smtp-source -F sends the file line by line and ends every line with CRLF: LF line ends here.
BODY_LINE='The quarterly figures are attached below; please review them before the meeting on Thursday.'
{
    printf 'Date: %s\nFrom: Alice <alice@fabrikam.example>\nTo: Bob <bob@contoso.com>\n' "$(date -R)"
    printf 'Subject: Quarterly figures\nMessage-ID: <bench.%s@fabrikam.example>\n' "$$"
    printf 'MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\nHello Bob,\n\n'
    for _ in $(seq 30); do echo "$BODY_LINE"; done
    printf '\nAlice\n'
} >"$TMP/plain.eml"
dkimsign sel1 fabrikam.example "$TMP/bench.key" <"$TMP/plain.eml" >"$TMP/signed.eml" 2>"$TMP/dkimsign.log" ||
    die "dkimsign" "$TMP/dkimsign.log"
# BENCH_UNSIGNED=1 sends the message without its signature (diagnosis: what DKIM alone costs).
[[ -n ${BENCH_UNSIGNED:-} ]] && cp "$TMP/plain.eml" "$TMP/signed.eml"
SIZE=$(wc -c <"$TMP/signed.eml")

# ---------------------------------------------------------------------------------------------
# One run: start the gateway, add the tenant, warm up, time MESSAGES messages, check every one was
# accepted and that authentication did (or did not) run, stop. Sets RATE (msg/s), SECS and QUERIES
# (DNS queries knot answered during the timed batch: near 0 when the cache works).
# ---------------------------------------------------------------------------------------------
# cpu_ticks PID: user time of a process, in clock ticks (authentication is user-space work; the
# kernel time is the spool's and Maildir's file-system work, the same in both modes and noisy).
cpu_ticks() { awk '{ print $14 }' "/proc/$1/stat"; }

run() {
    local mode=$1 enabled=$2 nrules=${3:-0} dir=$TMP/$1
    mkdir -p "$dir"
    cat >"$dir/portcullis.toml" <<EOF
hostname = "mx.bench.test"

[smtp]
max_connections = 2000
max_connections_per_ip = 1000
max_connections_per_network = 2000

[dns]
nameservers = ["127.0.0.1:$KNOT_PORT"]
timeout = "1s"

[auth]
enabled = $enabled
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
    PORTCULLIS_SERVER=$admin PORTCULLIS_DATA_DIR=$dir/data "$BIN" tenant add contoso >/dev/null
    PORTCULLIS_SERVER=$admin PORTCULLIS_DATA_DIR=$dir/data "$BIN" domain add contoso.com --tenant contoso >/dev/null
    ((nrules > 0)) && add_rules "$admin" "$dir/data/admin.token" "$nrules"

    local src=(smtp-source -s "$SESSIONS" -f alice@fabrikam.example -t bob@contoso.com
        -M client.bench.test -F "$TMP/signed.eml")
    # Options before the host: smtp-source stops reading options at the first operand.
    "${src[@]}" -m "$WARMUP" "127.0.0.1:$port" >"$dir/warmup.log" 2>&1 || die "$mode: warm-up batch failed" "$dir/warmup.log" "$dir/server.log"
    local t0 t1 q0 c0
    q0=$(knot_queries)
    c0=$(cpu_ticks "$SERVER_PID")
    t0=$(date +%s.%N)
    "${src[@]}" -m "$MESSAGES" "127.0.0.1:$port" >"$dir/timed.log" 2>&1 || die "$mode: timed batch failed" "$dir/timed.log" "$dir/server.log"
    t1=$(date +%s.%N)
    QUERIES=$(($(knot_queries) - q0))
    # The gateway's user CPU time per message of the timed batch, in microseconds.
    CPU_US=$(awk -v t="$(($(cpu_ticks "$SERVER_PID") - c0))" -v hz="$(getconf CLK_TCK)" -v n="$MESSAGES" \
        'BEGIN { printf "%.0f", t / hz / n * 1e6 }')

    # Every message of both batches was accepted (smtp-source stops at the first refusal anyway)
    # and reaches the Maildir.
    local delivered=0
    for _ in $(seq 300); do
        delivered=$(find "$dir/data/mail" -type f -path '*/new/*' 2>/dev/null | wc -l)
        ((delivered >= WARMUP + MESSAGES)) && break
        sleep 0.1
    done
    ((delivered == WARMUP + MESSAGES)) ||
        die "$mode: $delivered messages delivered, expected $((WARMUP + MESSAGES))" "$dir/server.log"
    # Authentication really ran (or really did not): look at one delivered copy.
    local f=
    for _ in $(seq 50); do
        f=$(find "$dir/data/mail" -type f -path '*/new/*' -print -quit 2>/dev/null || true)
        [[ -n $f ]] && break
        sleep 0.1
    done
    [[ -n $f ]] || die "$mode: nothing delivered" "$dir/server.log"
    if [[ $enabled == true && -n ${BENCH_UNSIGNED:-} ]]; then
        grep -q 'compauth=pass reason=100' "$f" || die "$mode: the delivered copy does not show compauth=pass reason=100" "$f"
    elif [[ $enabled == true ]]; then
        grep -q 'dkim=pass' "$f" && grep -q 'compauth=pass reason=100' "$f" ||
            die "$mode: the delivered copy does not show dkim=pass and compauth=pass reason=100" "$f"
    else
        grep -q 'compauth=none reason=301' "$f" || die "$mode: the delivered copy does not show compauth=none reason=301" "$f"
    fi

    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    RATE=$(awk -v n="$MESSAGES" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }')
    SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
}

# add_rules URL TOKENFILE N: N rules through the admin API, none of which matches the benchmark
# message, each with a header, a subject, a regex and a sender-domain condition (a regex cheaply
# rejected would flatter the result, so the first condition holds and the second fails).
add_rules() {
    python3 - "$1" "$2" "$3" <<'PY' || die "adding rules failed"
import json, sys, urllib.request
url, token, n = sys.argv[1], open(sys.argv[2]).read().strip(), int(sys.argv[3])
for i in range(n):
    rule = {
        "name": f"bench-{i:04}", "priority": i,
        "conditions": {
            "from_scope": "outside",
            "header_matches": [{"name": "X-Mailer", "pattern": f"^bench-tool-{i}-[0-9]+$"}],
            "header_contains": [{"name": "X-Project", "words": [f"project-{i}"]}],
            "subject_contains": [f"ticket {i}:"],
            "sender_domain_is": [f"d{i}.example"],
        },
        "exceptions": {"header_contains": [{"name": "X-Exempt", "words": ["yes"]}]},
        "actions": ["quarantine"],
    }
    req = urllib.request.Request(f"{url}/api/v1/tenants/contoso/rules", data=json.dumps(rule).encode(),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
PY
}

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
echo "# $MESSAGES messages of $SIZE bytes, $SESSIONS parallel sessions, one message per connection, after $WARMUP untimed; $ROUNDS rounds"
RATES_ON=() RATES_OFF=() CPU_ON=() CPU_OFF=() QUERIES_ON=0
on() {
    run "a-$1" "$A_AUTH" "$A_RULES"
    RATES_ON+=("$RATE") CPU_ON+=("$CPU_US")
    QUERIES_ON=$((QUERIES_ON + QUERIES))
    echo "round $1 $A_NAME: $RATE msg/s ($MESSAGES in $SECS s; $QUERIES DNS queries reached knot; gateway user CPU $CPU_US µs/msg)"
}
off() {
    run "b-$1" "$B_AUTH" "$B_RULES"
    RATES_OFF+=("$RATE") CPU_OFF+=("$CPU_US")
    echo "round $1 $B_NAME: $RATE msg/s ($MESSAGES in $SECS s; gateway user CPU $CPU_US µs/msg)"
}
for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2)); then on "$round"; off "$round"; else off "$round"; on "$round"; fi
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.1f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
RATE_ON=$(median "${RATES_ON[@]}")
RATE_OFF=$(median "${RATES_OFF[@]}")
echo "$A_NAME: median $RATE_ON msg/s (rounds: ${RATES_ON[*]})"
echo "$B_NAME: median $RATE_OFF msg/s (rounds: ${RATES_OFF[*]})"
CPUM_ON=$(median "${CPU_ON[@]}")
CPUM_OFF=$(median "${CPU_OFF[@]}")
echo "gateway user CPU per message: $A_NAME median $CPUM_ON µs (${CPU_ON[*]}), $B_NAME median $CPUM_OFF µs (${CPU_OFF[*]})"
RATIO=$(awk -v a="$RATE_ON" -v b="$RATE_OFF" 'BEGIN { printf "%.3f", a / b }')
COST=$(awk -v r="$RATIO" 'BEGIN { printf "%.1f", (1 - r) * 100 }')
if awk -v r="$RATIO" -v t="$TARGET" 'BEGIN { exit !(r >= t) }'; then VERDICT="met"; else VERDICT="NOT met"; fi
echo "ratio $A_NAME / $B_NAME: $RATIO ($COMPARE costs $COST% of throughput; target ratio >= $TARGET: $VERDICT)"

[[ -n $WRITE ]] || exit 0
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
MEM=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(cd "$ROOT" && [[ -n $(git status --porcelain 2>/dev/null) ]] && echo " + uncommitted changes" || true)
OUT=$ROOT/BENCHMARKS.md
if [[ ! -f $OUT ]]; then
    cat >"$OUT" <<'EOF'
# Benchmarks

Numbers measured on the project's machines, newest first. Each section says how to reproduce it.

EOF
fi
{
    head -n 4 "$OUT"
    if [[ $COMPARE == auth ]]; then
        TITLE="Email authentication: cost in throughput"
        GOAL="authentication costs under 25% of throughput with a warm DNS cache (ratio on/off ≥ 0.75)"
        NOTE="DNS queries that reached knot during the timed batches with authentication on: $QUERIES_ON (the cache
answers everything after the warm-up). The user CPU column is what authentication adds."
    else
        TITLE="Mail-flow rules: cost of $NRULES rules per tenant"
        GOAL="throughput with $NRULES rules per tenant within 20% of throughput with none (ratio ≥ 0.80)"
        NOTE="Each rule has five conditions (the first holds, the regex on X-Mailer then fails) and an exception;
none matches, so all $NRULES are evaluated for every message. Authentication on in both modes."
    fi
    cat <<EOF
## $TITLE

Target: $GOAL.

- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $COMMIT$DIRTY
- Machine: $(nproc) cores ($CPU), $MEM, $(uname -sr)
- Command: \`bench/throughput.sh --compare $COMPARE -m $MESSAGES -s $SESSIONS -w $WARMUP -r $ROUNDS\` (release build)
- Load: postfix \`smtp-source -s $SESSIONS -m $MESSAGES -F signed.eml\`, one message per connection, all from
  127.0.0.1; a $SIZE-byte message DKIM-signed (RSA 2048) by fabrikam.example, which publishes SPF and
  DMARC p=reject; knot on 127.0.0.1:$KNOT_PORT as DNS; an untimed batch of $WARMUP first (warms the DNS
  cache); spool fsync and Maildir delivery included. $ROUNDS rounds per mode, alternating which mode goes
  first; a fresh gateway and data directory each time.
- Load average before the run: $LOAD

| mode | accepted msg/s (median) | each round | gateway user CPU µs/msg (median; rounds) |
|---|---|---|---|
| $A_NAME | $RATE_ON | ${RATES_ON[*]} | $CPUM_ON; ${CPU_ON[*]} |
| $B_NAME | $RATE_OFF | ${RATES_OFF[*]} | $CPUM_OFF; ${CPU_OFF[*]} |

$NOTE Most of the gateway's CPU time is kernel time in the spool and Maildir (fsync, rename,
unlink); its variation between rounds dominates the rates, so compare the user CPU column too.

Ratio $A_NAME / $B_NAME: **$RATIO** — $COMPARE costs $COST% of throughput; target $VERDICT.

EOF
    tail -n +5 "$OUT"
} >"$OUT.new"
mv "$OUT.new" "$OUT"
echo "# written to $OUT"
