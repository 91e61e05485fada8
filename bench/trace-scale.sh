#!/usr/bin/env bash
# Message trace and the Direct Send report at scale (issue 24): N records (default 10 000 000) over
# 90 days across 100 tenants, the largest (t00) holding 30 %, written through the store's own
# write path (`crates/store/examples/trace_fill.rs`: Store::upsert_traces in batches of 500, as
# the trace writer does, accepted mail written again as delivered), on SQLite and PostgreSQL.
# Then against the running release build:
#   - the Direct Send report for t00 over 30 and 90 days (CLI, median of 3; `[auth] enabled =
#     false`, so no reverse-DNS lookups: they have a 2 s budget of their own);
#   - `trace` with one filter (sender, recipient, message-id, client IP, status) over the whole
#     90 days: first page and the next page by cursor, 30 values each, p50/p99 (HTTP API, one
#     kept-alive connection); `trace show` of 100 records, p50/p99;
#   - storage per record with its indexes (SQLite: the database file after a checkpoint;
#     PostgreSQL: the trace tables with their indexes and TOAST).
# Writes a section of BENCHMARKS.md unless --no-write.
#
# Usage: bench/trace-scale.sh [-n RECORDS] [--backend sqlite|postgres|both] [--no-write]
#   PostgreSQL: $PORTCULLIS_TEST_POSTGRES (default postgres://postgres@127.0.0.1:5432/test) is
#   used to create and drop a database of its own.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=10000000
BACKENDS=(sqlite postgres)
WRITE=1
while (($#)); do
    case $1 in
        -n) N=$2; shift 2 ;;
        --backend) [[ $2 == both ]] && BACKENDS=(sqlite postgres) || BACKENDS=("$2"); shift 2 ;;
        --no-write) WRITE=; shift ;;
        *) echo "usage: $0 [-n RECORDS] [--backend sqlite|postgres|both] [--no-write]" >&2; exit 2 ;;
    esac
done
(cd "$ROOT" && cargo build --release -p portcullis && cargo build --release -p portcullis-store --example trace_fill) >&2
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release/portcullis
FILL=$TARGET_DIR/release/examples/trace_fill
PG_BASE=${PORTCULLIS_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}
PG_DB=portcullis_scale_$$
TMP=$(mktemp -d)
PID=
cleanup() {
    [[ -n $PID ]] && kill -KILL "$PID" 2>/dev/null || true
    psql "$PG_BASE" -qc "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1 || true
    [[ -n ${KEEP_TMP:-} ]] && echo "# kept $TMP" >&2 || rm -rf "$TMP"
}
trap cleanup EXIT
die() { echo "FATAL: $*" >&2; tail -n 20 "$TMP/server.log" >&2 || true; exit 1; }

start() { # start DATA_DIR CONFIG
    : >"$TMP/server.out"
    NO_COLOR=1 "$BIN" serve --config "$2" --data-dir "$1" --smtp-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
        >"$TMP/server.out" 2>"$TMP/server.log" &
    PID=$!
    for _ in $(seq 600); do
        if [[ $(head -n 1 "$TMP/server.out" 2>/dev/null) =~ admin\ API\ on\ (http://[0-9.:]+), ]]; then
            export PORTCULLIS_SERVER=${BASH_REMATCH[1]} PORTCULLIS_DATA_DIR=$1
            return
        fi
        sleep 0.1
    done
    die "gateway did not start"
}
stop() { kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

ROWS=()
for backend in "${BACKENDS[@]}"; do
    data=$TMP/$backend
    mkdir -p "$data"
    config=$TMP/$backend.toml
    # No DNS: the report's reverse-DNS lookups (200 addresses, a 2 s budget) would time out
    # against this sandbox's resolver and measure that budget, not the report.
    printf '[auth]\nenabled = false\n' >"$config"
    if [[ $backend == postgres ]]; then
        psql "$PG_BASE" -qc "DROP DATABASE IF EXISTS $PG_DB" -c "CREATE DATABASE $PG_DB" >/dev/null
        url="${PG_BASE%/*}/$PG_DB"
        printf '[storage]\nurl = "%s"\n' "$url" >>"$config"
    else
        url="sqlite://$data/portcullis.db"
    fi
    start "$data" "$config"
    "$BIN" tenant add t00 >/dev/null
    "$BIN" domain add t00.example --tenant t00 >/dev/null
    stop

    echo "# $backend: writing $N records"
    FILL_OUT=$("$FILL" "$url" "$N" 90 100)
    echo "# $FILL_OUT"
    RATE=$(grep -oE '[0-9]+ records/s' <<<"$FILL_OUT")

    if [[ $backend == postgres ]]; then
        BYTES=$(psql "$url" -Atc "VACUUM ANALYZE" -c "SELECT sum(pg_total_relation_size(c)) FROM unnest(ARRAY['trace','trace_recipients','trace_sources']::regclass[]) c")
        BYTES=$(tail -n 1 <<<"$BYTES")
    else
        python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("PRAGMA wal_checkpoint(TRUNCATE)"); c.close()' "$data/portcullis.db"
        BYTES=$(stat -c %s "$data/portcullis.db")
    fi
    PER=$(awk -v b="$BYTES" -v n="$N" 'BEGIN { printf "%.0f", b / n }')
    echo "# $backend: $((BYTES / 1048576)) MiB, $PER bytes per record"

    start "$data" "$config"
    report() {
        local times=() t0 t1
        for _ in 1 2 3; do
            t0=$(date +%s.%N)
            "$BIN" report direct-send --tenant t00 --since "$1" --format json >"$TMP/report.json"
            t1=$(date +%s.%N)
            times+=("$(secs "$t0" "$t1")")
        done
        printf '%s\n' "${times[@]}" | sort -n | sed -n 2p
    }
    R30=$(report 30d)
    R90=$(report 90d)
    echo "# $backend: report 30d ${R30} s, 90d ${R90} s"
    QUERIES=$(python3 - "$PORTCULLIS_SERVER" "$data/admin.token" <<'PY'
import http.client, json, random, sys, time, urllib.parse
server, token = sys.argv[1], open(sys.argv[2]).read().strip()
host = urllib.parse.urlparse(server).netloc
conn = http.client.HTTPConnection(host, timeout=120)
def get(path):
    t0 = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    resp = conn.getresponse()
    body = resp.read()
    ms = (time.perf_counter() - t0) * 1000
    if resp.status != 200:
        sys.exit(f"{path}: {resp.status} {body[:200]}")
    return ms, json.loads(body), resp.getheader("X-Next-Cursor")
base = "/api/v1/tenants/t00/trace"
_, sample, _ = get(f"{base}?since=90d&limit=2000")
random.seed(3)
picks = random.sample(sample, 30)
def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]
values = {
    "sender": [r["mail_from"] for r in picks],
    "recipient": [r["recipients"][0]["address"] for r in picks],
    "message_id": [r.get("message_id") or sample[0]["message_id"] for r in picks],
    "from_ip": [r["client_ip"] for r in picks],
    "status": [random.choice(["delivered", "rejected"]) for _ in picks],
}
out = {}
for name, vals in values.items():
    first, later = [], []
    for v in vals:
        q = urllib.parse.urlencode({name: v, "since": "90d", "limit": 100})
        ms, recs, cursor = get(f"{base}?{q}")
        first.append(ms)
        if cursor:
            ms, _, _ = get(f"{base}?{q}&cursor={urllib.parse.quote(cursor)}")
            later.append(ms)
    out[name] = (pct(first, 50), pct(first, 99), pct(later, 50) if later else None, pct(later, 99) if later else None)
shows = [get(f"{base}/{r['trace_id']}")[0] for r in random.sample(sample, 100)]
out["show"] = (pct(shows, 50), pct(shows, 99), None, None)
for name, (a, b, c, d) in out.items():
    later = f"{c:.1f}/{d:.1f}" if c is not None else "—"
    print(f"{name} {a:.1f}/{b:.1f} {later}")
PY
)
    stop
    echo "$QUERIES" | sed "s/^/# $backend: /"
    ROWS+=("$backend|$RATE|$PER|$R30|$R90|$(tr '\n' ';' <<<"$QUERIES")")
done

[[ -n $WRITE ]] || exit 0
OUT=$ROOT/BENCHMARKS.md
COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD)
{
    head -n 4 "$OUT"
    cat <<EOF
## Message trace and the Direct Send report at $N records

Targets (issue 24): report over 30 days < 1 s, over 90 days < 2 s; \`trace\` with one filter, first
and later pages p99 < 200 ms; \`trace show\` < 20 ms; at most 600 bytes per record with indexes.

- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $COMMIT; $(nproc) cores, $(uname -sr)
- Command: \`bench/trace-scale.sh -n $N\` (release build)
- Data: $N records over 90 days, 100 tenants, t00 holding 30 %; 60 % delivered mail, 30 % refused at
  RCPT, 10 % direct send accepted in audit mode; written with \`Store::upsert_traces\`.
- Trace queries: t00, the whole 90 days, 30 values per filter; times in ms as p50/p99.

| backend | write rate | bytes/record | report 30 d | report 90 d | sender | recipient | message-id | client IP | status | show |
|---|---|---|---|---|---|---|---|---|---|---|
EOF
    for row in "${ROWS[@]}"; do
        IFS='|' read -r be rate per r30 r90 q <<<"$row"
        declare -A first=() later=()
        while read -r name f l; do
            [[ -n $name ]] || continue
            first[$name]=$f; later[$name]=$l
        done < <(tr ';' '\n' <<<"$q")
        cell() { echo "${first[$1]} (next ${later[$1]})"; }
        echo "| $be | $rate | $per | $r30 s | $r90 s | $(cell sender) | $(cell recipient) | $(cell message_id) | $(cell from_ip) | $(cell status) | ${first[show]} |"
    done
    echo
    tail -n +5 "$OUT"
} >"$OUT.new"
mv "$OUT.new" "$OUT"
echo "# written to $OUT"
