#!/usr/bin/env bash
# Writes every `--help` text of the portcullis binary and its admin API's OpenAPI description
# into one directory, so two builds can be compared byte for byte (`diff -r A B`): a refactoring
# that must not change the user-facing interface shows an empty diff.
#
# Usage: scripts/interface-snapshot.sh BIN OUTDIR
set -euo pipefail

BIN=$1
OUT=$2
mkdir -p "$OUT"

# The subcommands listed under "Commands:" of a help text (help itself excluded).
subcommands() {
    awk '/^Commands:/ {on = 1; next} on && /^[^ ]/ {on = 0} on && /^  [a-z]/ {print $1}' |
        grep -vx help || true
}

walk() {
    local name=${*:-portcullis}
    local file=$OUT/help-${name// /_}.txt
    "$BIN" "$@" --help >"$file"
    local sub
    for sub in $(subcommands <"$file"); do
        walk "$@" "$sub"
    done
}
walk
"$BIN" --version >"$OUT/version.txt"

# OpenAPI: a throw-away gateway on ephemeral loopback ports.
DATA=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$DATA"' EXIT
ADMIN_PORT=$((20000 + RANDOM % 20000))
SMTP_PORT=$((ADMIN_PORT + 1))
"$BIN" --data-dir "$DATA" serve --smtp-listen 127.0.0.1:$SMTP_PORT \
    --admin-listen 127.0.0.1:$ADMIN_PORT >"$DATA/log" 2>&1 &
PID=$!
for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$ADMIN_PORT/api/v1/openapi.json" -o "$OUT/openapi.json" 2>/dev/null && break
    sleep 0.1
done
[[ -s $OUT/openapi.json ]] || { cat "$DATA/log" >&2; echo "no OpenAPI document" >&2; exit 1; }
echo "$(ls "$OUT" | wc -l) files in $OUT"
