#!/usr/bin/env bash
# The Direct Send report over a large trace: N synthetic trace records (default 1 000 000; 70%
# direct send from 5 000 addresses in 40 networks, the rest ordinary mail) written straight into
# the SQLite store of a stopped gateway, then `portcullis report direct-send --since 30d` timed
# against the running release build. Prints the time, the gateway's peak resident memory before
# and after the report (VmHWM), and the storage cost per trace record; writes them to BENCHMARKS.md.
#
# Usage: bench/report.sh [-n RECORDS] [--no-write]   (binary: $PORTCULLIS_BIN or target/release)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=1000000
WRITE=1
while (($#)); do
    case $1 in
        -n) N=$2; shift 2 ;;
        --no-write) WRITE=; shift ;;
        *) echo "usage: $0 [-n RECORDS] [--no-write]" >&2; exit 2 ;;
    esac
done
BIN=${PORTCULLIS_BIN:-$ROOT/target/release/portcullis}
if [[ -z ${PORTCULLIS_BIN:-} ]]; then
    (cd "$ROOT" && cargo build --release -p portcullis) >&2
fi
TMP=$(mktemp -d)
PID=
cleanup() {
    [[ -n $PID ]] && kill -KILL "$PID" 2>/dev/null || true
    [[ -n ${KEEP_TMP:-} ]] && echo "# kept $TMP" >&2 || rm -rf "$TMP"
}
trap cleanup EXIT
die() { echo "FATAL: $*" >&2; tail -n 20 "$TMP/server.log" >&2 || true; exit 1; }

start() {
    : >"$TMP/server.out"
    NO_COLOR=1 "$BIN" serve --data-dir "$TMP/data" --smtp-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
        >"$TMP/server.out" 2>"$TMP/server.log" &
    PID=$!
    for _ in $(seq 300); do
        if [[ $(head -n 1 "$TMP/server.out" 2>/dev/null) =~ admin\ API\ on\ (http://[0-9.:]+), ]]; then
            export PORTCULLIS_SERVER=${BASH_REMATCH[1]} PORTCULLIS_DATA_DIR=$TMP/data
            return
        fi
        sleep 0.1
    done
    die "gateway did not start"
}
stop() { kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=; }
hwm_kib() { awk '/^VmHWM/ { print $2 }' "/proc/$PID/status"; }

start
"$BIN" tenant add contoso >/dev/null
"$BIN" domain add contoso.com --tenant contoso >/dev/null
stop

echo "# writing $N trace records into $TMP/data/portcullis.db"
T0=$(date +%s.%N)
python3 - "$TMP/data/portcullis.db" "$N" <<'PY'
import json, random, sqlite3, sys, time
db, n = sys.argv[1], int(sys.argv[2])
random.seed(7)
con = sqlite3.connect(db)
now = int(time.time() * 1e6)
nets = [f"198.{18 + i // 20}.{i % 20 * 3}." for i in range(40)]
def record(i):
    direct = random.random() < 0.7
    at = now - random.randint(0, 29 * 86400) * 1_000_000 - i
    if direct:
        ip = random.choice(nets) + str(random.randint(1, 125))
        frm = random.choice(["ceo", "payroll", "scanner", "news"]) + "@contoso.com"
        spf = random.choice(["pass", "fail", "softfail", "none"])
        dkim = random.choice(["pass", "none", "fail"])
    else:
        ip = f"203.0.{random.randint(0, 255)}.{random.randint(1, 254)}"
        frm = f"user{random.randint(1, 999)}@partner{random.randint(1, 50)}.example"
        spf, dkim = "pass", "pass"
    tid = f"{at:013X}{i:08X}"
    rcpt = f"user{random.randint(1, 400)}@contoso.com"
    rec = {
        "trace_id": tid, "tenant": "contoso",
        "received_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at / 1e6)) + ".000000Z",
        "client_ip": ip, "helo": f"host{random.randint(1, 99)}.example", "tls": None,
        "mail_from": frm, "header_from": frm, "message_id": f"{tid}@example", "subject": "Quarterly figures",
        "size": random.randint(2000, 80000), "attribution": "anonymous", "connector": None, "direct_send": direct,
        "auth": {"spf": spf, "dkim": dkim, "dmarc": "fail" if direct else "pass", "arc": "none",
                 "compauth": "fail" if direct else "pass", "compauth_reason": 601 if direct else 100,
                 "dmarc_policy": "none"},
        "status": "delivered",
        "recipients": [{"address": rcpt, "status": "delivered", "reply": "250 2.0.0 delivered to mailbox"}],
        "events": [
            {"at": "2026-11-29T10:00:00.000000Z", "event": "AUDIT", "detail": "would reject 550 5.7.68 ..."} if direct else
            {"at": "2026-11-29T10:00:00.000000Z", "event": "AUTH", "detail": "spf=pass dkim=[pass] dmarc=pass"},
            {"at": "2026-11-29T10:00:00.000000Z", "event": "RECEIVE", "detail": f"received from [{ip}] by mx, 4096 bytes"},
            {"at": "2026-11-29T10:00:01.000000Z", "event": "DELIVER", "detail": "maildir: 1 recipient(s)"}],
    }
    return (tid, at, ip, frm, rec["message_id"], json.dumps(rec), int(direct), rcpt)
batch = []
for i in range(n):
    batch.append(record(i))
    if len(batch) == 20000 or i == n - 1:
        con.executemany("INSERT INTO trace (tenant, trace_id, received_at, client_ip, mail_from, message_id, status, record, direct_send) "
                        "VALUES ('contoso', ?, ?, ?, ?, ?, 'delivered', ?, ?)", [b[:7] for b in batch])
        con.executemany("INSERT INTO trace_recipients (tenant, trace_id, address) VALUES ('contoso', ?, ?)", [(b[0], b[7]) for b in batch])
        con.commit()
        batch = []
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
con.close()
PY
T1=$(date +%s.%N)
DB_BYTES=$(stat -c %s "$TMP/data/portcullis.db")
PER_RECORD=$(awk -v b="$DB_BYTES" -v n="$N" 'BEGIN { printf "%.0f", b / n }')
echo "# filled in $(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.0f", b - a }') s; database $((DB_BYTES / 1048576)) MiB, $PER_RECORD bytes per record (with indexes)"

start
HWM0=$(hwm_kib)
T0=$(date +%s.%N)
"$BIN" report direct-send --tenant contoso --since 30d --format json >"$TMP/report.json"
T1=$(date +%s.%N)
HWM1=$(hwm_kib)
SECS=$(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.1f", b - a }')
MESSAGES=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["summary"]["messages"], r["summary"]["sources"])' "$TMP/report.json")
stop
read -r DS SOURCES <<<"$MESSAGES"
echo "report over $N records ($DS direct-send, $SOURCES sources): $SECS s; gateway peak RSS $((HWM0 / 1024)) MiB before, $((HWM1 / 1024)) MiB after"

[[ -n $WRITE ]] || exit 0
OUT=$ROOT/BENCHMARKS.md
COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD)
{
    head -n 4 "$OUT"
    cat <<EOF
## Direct Send report over $N trace records

Target: a 1-million-record trace reports in seconds, not minutes.

- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $COMMIT; $(nproc) cores, $(uname -sr)
- Command: \`bench/report.sh -n $N\` (release build, SQLite store)
- Data: $N synthetic records over 30 days, 70% direct send from 5 000 addresses in 40 networks.

| records | direct-send records | sources | report time | gateway peak RSS before → after | storage per record |
|---|---|---|---|---|---|
| $N | $DS | $SOURCES | $SECS s | $((HWM0 / 1024)) MiB → $((HWM1 / 1024)) MiB | $PER_RECORD bytes (database with indexes) |

The scan reads 2 000 records per page (keyset pagination on \`(tenant, direct_send, received_at)\`), so
memory grows with the number of distinct sending addresses, not with the trace.

EOF
    tail -n +5 "$OUT"
} >"$OUT.new"
mv "$OUT.new" "$OUT"
echo "# written to $OUT"
