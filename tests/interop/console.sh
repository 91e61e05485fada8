#!/usr/bin/env bash
# The web console in a real browser: starts the gateway binary (SQLite, Maildir, email
# authentication off: no DNS needed) and runs tests/browser/console_test.py, which drives Debian's
# headless Chromium with Playwright (from PyPI, in a cached venv: no browser download) and sends
# real SMTP with smtplib. Screenshots of every page go to $CONSOLE_SCREENSHOTS (default
# target/console-screenshots; not committed).
#
# Usage: tests/interop/console.sh            (binary: target/debug/portcullis, or $PORTCULLIS_BIN)
# Needs: chromium (Debian), python3 with venv, network access to PyPI on the first run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/interop/lib.sh
source "$ROOT/tests/interop/lib.sh"
BIN=${PORTCULLIS_BIN:-$ROOT/target/debug/portcullis}
[[ -x $BIN ]] || { echo "FATAL: $BIN not found; run 'cargo build -p portcullis' first" >&2; exit 1; }
[[ -x /usr/bin/chromium ]] || { echo "FATAL: chromium is not installed (apt-get install chromium)" >&2; exit 1; }
PLAYWRIGHT_VERSION=1.65.0
SHOTS=${CONSOLE_SCREENSHOTS:-$ROOT/target/console-screenshots}

TMP=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    [[ -n ${KEEP_TMP:-} ]] && echo "# kept $TMP" >&2 || rm -rf "$TMP"
}
trap cleanup EXIT
FAIL_LOGS=("$TMP/server.log")

VENV=${XDG_CACHE_HOME:-$HOME/.cache}/portcullis-interop/venv-pw-$PLAYWRIGHT_VERSION
if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import playwright' 2>/dev/null; then
    rm -rf "$VENV"
    python3 -m venv "$VENV" >"$TMP/venv.log" 2>&1 || fail "python3 -m venv" "$TMP/venv.log"
    "$VENV/bin/pip" install -q "playwright==$PLAYWRIGHT_VERSION" >>"$TMP/venv.log" 2>&1 ||
        fail "pip install playwright" "$TMP/venv.log"
fi
ok "playwright $PLAYWRIGHT_VERSION in $VENV, Chromium: $(/usr/bin/chromium --version 2>/dev/null | head -1)"

printf '[auth]\nenabled = false\n' >"$TMP/portcullis.toml"
NO_COLOR=1 "$BIN" serve --config "$TMP/portcullis.toml" --data-dir "$TMP/data" \
    --smtp-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 >"$TMP/server.out" 2>"$TMP/server.log" &
SERVER_PID=$!
SMTP_PORT= ADMIN_URL=
for _ in $(seq 100); do
    if line=$(head -n 1 "$TMP/server.out" 2>/dev/null) &&
        [[ $line =~ ^portcullis:\ SMTP\ on\ 127\.0\.0\.1:([0-9]+),\ admin\ API\ on\ (http://127\.0\.0\.1:[0-9]+), ]]; then
        SMTP_PORT=${BASH_REMATCH[1]}
        ADMIN_URL=${BASH_REMATCH[2]}
        break
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || fail "server exited during start-up"
    sleep 0.1
done
[[ -n $SMTP_PORT ]] || fail "server did not announce its ports on stdout within 10 s" "$TMP/server.out"
ok "server started: SMTP 127.0.0.1:$SMTP_PORT, admin $ADMIN_URL"

rm -rf "$SHOTS"
PORTCULLIS_BIN=$BIN "$VENV/bin/python" "$ROOT/tests/browser/console_test.py" \
    "$SMTP_PORT" "$ADMIN_URL" "$TMP/data" "$SHOTS" 2>&1 | tee "$TMP/test.log" ||
    fail "the browser test" "$TMP/test.log"
ok "console browser test passed; screenshots in $SHOTS"
