#!/usr/bin/env bash
# The web console's page weight and speed at scale (issue 23): N trace records (default
# 1 000 000) written through the store's own write path (`trace_fill`: 90 days, 100 tenants, t00
# holding 30 %), then every console page of t00 fetched by a logged-in client against the release
# build: server time p50/p95 over repeated requests (one kept-alive connection, as a browser
# does), the HTML's size, and the first visit's whole transfer (the page plus its stylesheets and
# scripts, which are cached for a year after it). SQLite, or PostgreSQL with --backend postgres.
# Writes a section of BENCHMARKS.md unless --no-write.
#
# Usage: bench/console.sh [-n RECORDS] [--backend sqlite|postgres] [--no-write]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=1000000
BACKEND=sqlite
WRITE=1
while (($#)); do
    case $1 in
        -n) N=$2; shift 2 ;;
        --backend) BACKEND=$2; shift 2 ;;
        --no-write) WRITE=; shift ;;
        *) echo "usage: $0 [-n RECORDS] [--backend sqlite|postgres] [--no-write]" >&2; exit 2 ;;
    esac
done
(cd "$ROOT" && cargo build --release -p portcullis && cargo build --release -p portcullis-store --example trace_fill) >&2
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release/portcullis
FILL=$TARGET_DIR/release/examples/trace_fill
PG_BASE=${PORTCULLIS_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}
PG_DB=portcullis_console_$$
TMP=$(mktemp -d)
PID=
cleanup() {
    [[ -n $PID ]] && kill -KILL "$PID" 2>/dev/null || true
    psql "$PG_BASE" -qc "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1 || true
    [[ -n ${KEEP_TMP:-} ]] && echo "# kept $TMP" >&2 || rm -rf "$TMP"
}
trap cleanup EXIT
die() { echo "FATAL: $*" >&2; tail -n 20 "$TMP/server.log" >&2 || true; exit 1; }

start() {
    : >"$TMP/server.out"
    NO_COLOR=1 "$BIN" serve --config "$TMP/portcullis.toml" --data-dir "$TMP/data" --smtp-listen 127.0.0.1:0 \
        --admin-listen 127.0.0.1:0 >"$TMP/server.out" 2>"$TMP/server.log" &
    PID=$!
    for _ in $(seq 600); do
        if [[ $(head -n 1 "$TMP/server.out" 2>/dev/null) =~ admin\ API\ on\ (http://[0-9.:]+), ]]; then
            export PORTCULLIS_SERVER=${BASH_REMATCH[1]} PORTCULLIS_DATA_DIR=$TMP/data
            return
        fi
        sleep 0.1
    done
    die "gateway did not start"
}
stop() { kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=; }

mkdir -p "$TMP/data"
# No DNS: the Direct Send report's reverse-DNS lookups would measure this sandbox's resolver.
printf '[auth]\nenabled = false\n' >"$TMP/portcullis.toml"
if [[ $BACKEND == postgres ]]; then
    psql "$PG_BASE" -qc "DROP DATABASE IF EXISTS $PG_DB" -c "CREATE DATABASE $PG_DB" >/dev/null
    url="${PG_BASE%/*}/$PG_DB"
    printf '[storage]\nurl = "%s"\n' "$url" >>"$TMP/portcullis.toml"
else
    url="sqlite://$TMP/data/portcullis.db"
fi
start
"$BIN" tenant add t00 >/dev/null
"$BIN" domain add t00.example --tenant t00 >/dev/null
"$BIN" connector add relay --tenant t00 --sender-ip 192.0.2.0/24 >/dev/null
"$BIN" rule add hold --tenant t00 --priority 0 --subject-contains hold-me --quarantine >/dev/null
stop
echo "# $BACKEND: writing $N records" >&2
FILL_OUT=$("$FILL" "$url" "$N" 90 100)
echo "# $FILL_OUT" >&2
start

RESULT=$(python3 - "$PORTCULLIS_SERVER" "$TMP/data/admin.token" <<'PY'
import http.client, re, statistics, sys, time, urllib.parse
server, token = sys.argv[1], open(sys.argv[2]).read().strip()
host = urllib.parse.urlparse(server).netloc
conn = http.client.HTTPConnection(host, timeout=120)

def request(method, path, body=None, headers=None):
    t0 = time.perf_counter()
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    return (time.perf_counter() - t0) * 1000, r, data

# Log in as a browser does: the form's cookie and token, then the session cookie.
_, r, page = request("GET", "/login")
login = re.search(r"portcullis_login=([0-9a-f]+)", r.getheader("Set-Cookie")).group(1)
csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.decode()).group(1)
body = urllib.parse.urlencode({"csrf": csrf, "token": token, "next": "/"})
_, r, _ = request("POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded",
                                           "Cookie": f"portcullis_login={login}"})
session = re.search(r"portcullis_session=([^;]+)", r.getheader("Set-Cookie")).group(1)
cookie = {"Cookie": f"portcullis_session={session}"}

_, _, trace_page = request("GET", "/t/t00/trace", headers=cookie)
ids = re.findall(r'href="/t/t00/trace/([A-Za-z0-9._-]+)"', trace_page.decode())
sender = re.findall(r'<td class="addr">([^<@]+@[^<]+)</td>', trace_page.decode())[0]
pages = [
    ("login form", "/login", 20, {}),
    ("overview, 30 days", "/t/t00/overview", 20, cookie),
    ("overview, 90 days", "/t/t00/overview?since=90d", 20, cookie),
    ("Direct Send report, 30 days: first view (computed)", "/t/t00/direct-send", 1, cookie),
    ("Direct Send report, 30 days: later views (kept)", "/t/t00/direct-send", 20, cookie),
    ("message trace, first page", "/t/t00/trace", 20, cookie),
    ("message trace, by sender", "/t/t00/trace?sender=" + urllib.parse.quote(sender), 20, cookie),
    ("message trace, record", f"/t/t00/trace/{ids[0]}", 20, cookie),
    ("quarantine", "/t/t00/quarantine", 20, cookie),
    ("settings", "/t/t00/settings", 20, cookie),
    ("domains", "/t/t00/domains", 20, cookie),
    ("connectors", "/t/t00/connectors", 20, cookie),
    ("rules", "/t/t00/rules", 20, cookie),
    ("audit log", "/t/t00/audit", 20, cookie),
    ("tenants (operator)", "/operator/tenants", 20, cookie),
    ("tokens (operator)", "/operator/tokens", 20, cookie),
    ("queue (operator)", "/operator/queue", 20, cookie),
]
assets = {}
rows = []
for name, path, n, headers in pages:
    times = []
    for _ in range(n):
        ms, r, data = request("GET", path, headers=headers)
        if r.status != 200:
            sys.exit(f"{path}: {r.status} {data[:300]}")
        times.append(ms)
    html = data.decode()
    first = len(data)
    for a in re.findall(r'(?:href|src)="(/assets/[^"]+)"', html):
        if a not in assets:
            # As a browser fetches them: gzip accepted; the bytes on the wire are counted.
            _, r, body = request("GET", a, headers={"Accept-Encoding": "gzip"})
            assets[a] = len(body)
        first += assets[a]
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    rows.append(f"| {name} | {statistics.median(times):.1f} | {p95:.1f} | {len(data) / 1024:.1f} | {first / 1024:.1f} |")
print("\n".join(rows))
PY
)
stop
echo "$RESULT"

if [[ -n $WRITE ]]; then
    CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
    {
        echo
        echo "## Web console at $N trace records ($BACKEND)"
        echo
        echo "\`bench/console.sh -n $N --backend $BACKEND\` on $(date -u +%Y-%m-%d), $(nproc) cores ($CPU), release build."
        echo "Records written by \`trace_fill\` through \`Store::upsert_traces\` (90 days, 100 tenants, t00 holding 30 %):"
        echo "$FILL_OUT."
        echo "Server time as a logged-in browser sees it (one kept-alive connection; p50/p95 of 20 requests). The"
        echo "Direct Send page computes the report through the API on its first view and keeps it a minute"
        echo "(recomputed in the background after that), so its first view is measured apart. *First visit* is the"
        echo "page (not compressed: it carries the CSRF token) with its stylesheets and scripts as transferred"
        echo "(gzip; then cached for a year under versioned names, so later pages transfer their HTML only)."
        echo "Targets: every page under 200 KB transferred and served in under 50 ms."
        echo
        echo "| page (tenant t00) | p50 ms | p95 ms | HTML KB | first visit KB |"
        echo "|---|---:|---:|---:|---:|"
        echo "$RESULT"
    } >>"$ROOT/BENCHMARKS.md"
    echo "# appended to BENCHMARKS.md" >&2
fi
