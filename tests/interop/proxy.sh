#!/usr/bin/env bash
# HAProxy as the real TCP load balancer in front of the running gateway, with the PROXY protocol:
#
#   1. two frontends on 127.0.0.60, one sending PROXY v1 (`send-proxy`), one v2 (`send-proxy-v2`),
#      both connecting to the gateway from 127.0.0.61, the one address of
#      `[smtp] proxy_trusted_networks`;
#   2. clients (swaks) on distinct addresses: 127.0.0.31 is the tenant's on-premises connector, so
#      its direct send is accepted; 127.0.0.32 is nobody, so its direct send gets 550 5.7.68. Each
#      through both frontends: attribution, the trace (`client_ip` the real client, `proxy_ip` the
#      balancer) and the Direct Send report see the client, never the balancer;
#   3. a connection from the balancer's address without a header gets no banner, and the log says
#      why; a PROXY line from an untrusted client is an unknown command.
#
# Usage: tests/interop/proxy.sh            (binary: target/debug/portcullis, or $PORTCULLIS_BIN)
# Needs: haproxy, swaks, jq. Email authentication is off (no DNS needed). Uses only 127.0.0.x.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/interop/lib.sh
source "$ROOT/tests/interop/lib.sh"
BIN=${PORTCULLIS_BIN:-$ROOT/target/debug/portcullis}
[[ -x $BIN ]] || { echo "FATAL: $BIN not found; run 'cargo build -p portcullis' first" >&2; exit 1; }
export PATH="$PATH:/usr/sbin:/sbin"
for tool in haproxy swaks jq; do
    command -v "$tool" >/dev/null || { echo "FATAL: $tool is not installed" >&2; exit 1; }
done

TMP=$(mktemp -d)
SERVER_PID=
HAPROXY_PID=

cleanup() {
    local pid
    for pid in "$HAPROXY_PID" "$SERVER_PID"; do
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    [[ -n ${KEEP_TMP:-} ]] && echo "# kept $TMP" >&2 || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

FAIL_LOGS=("$TMP/haproxy.log" "$TMP/server.log")

listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

free_port() {
    local p _i
    for _i in $(seq 50); do
        p=$((20000 + RANDOM % 40000))
        listening "$1" "$p" || { echo "$p"; return 0; }
    done
    echo "FATAL: no free port on $1" >&2
    return 1
}

# ---------------------------------------------------------------------------------------------
# The gateway: trusts PROXY headers from 127.0.0.61 only.
# ---------------------------------------------------------------------------------------------
BALANCER_OUT=127.0.0.61
DATA=$TMP/data
cat >"$TMP/portcullis.toml" <<EOF
[auth]
enabled = false

[smtp]
proxy_trusted_networks = ["$BALANCER_OUT/32"]
proxy_timeout = "2s"
EOF
NO_COLOR=1 PORTCULLIS_LOG=info "$BIN" serve --config "$TMP/portcullis.toml" --data-dir "$DATA" \
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
[[ -n $SMTP_PORT ]] || fail "server did not announce its ports within 10 s" "$TMP/server.out"
ok "server started: SMTP 127.0.0.1:$SMTP_PORT, PROXY trusted from $BALANCER_OUT"

export PORTCULLIS_SERVER=$ADMIN_URL PORTCULLIS_DATA_DIR=$DATA
unset PORTCULLIS_TOKEN
N=0
pc() {
    N=$((N + 1))
    local out=$TMP/cli.$N rc=0
    "$BIN" "$@" >"$out" 2>&1 || rc=$?
    [[ $rc == 0 ]] || fail "portcullis $* (exit status $rc)" "$out"
    cat "$out"
}
pc tenant add contoso >/dev/null
pc domain add contoso.com --tenant contoso >/dev/null
pc org set --tenant contoso --reject-direct-send on >/dev/null
pc connector add on-prem --tenant contoso --type on-premises --sender-ip 127.0.0.31/32 >/dev/null
ok "contoso: reject direct send on, on-premises connector for 127.0.0.31"

# ---------------------------------------------------------------------------------------------
# HAProxy: v1 and v2 frontends, connecting out from the trusted address.
# ---------------------------------------------------------------------------------------------
FRONT=127.0.0.60
V1_PORT=$(free_port $FRONT)
V2_PORT=$(free_port $FRONT)
while [[ $V2_PORT == "$V1_PORT" ]]; do V2_PORT=$(free_port $FRONT); done
cat >"$TMP/haproxy.cfg" <<EOF
global
    log stderr format raw local0 info
defaults
    mode tcp
    log global
    option tcplog
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend smtp_v1
    bind $FRONT:$V1_PORT
    default_backend gateway_v1
frontend smtp_v2
    bind $FRONT:$V2_PORT
    default_backend gateway_v2
backend gateway_v1
    server gw 127.0.0.1:$SMTP_PORT send-proxy source $BALANCER_OUT
backend gateway_v2
    server gw 127.0.0.1:$SMTP_PORT send-proxy-v2 source $BALANCER_OUT
EOF
haproxy -c -f "$TMP/haproxy.cfg" >"$TMP/haproxy.check" 2>&1 || fail "haproxy rejects its configuration" "$TMP/haproxy.check"
haproxy -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 &
HAPROXY_PID=$!
for _ in $(seq 100); do
    listening $FRONT "$V1_PORT" && listening $FRONT "$V2_PORT" && break
    kill -0 "$HAPROXY_PID" 2>/dev/null || fail "haproxy exited during start-up"
    sleep 0.1
done
listening $FRONT "$V2_PORT" || fail "haproxy does not listen on $FRONT:$V1_PORT/$V2_PORT"
ok "$(haproxy -v | head -n 1 | cut -d' ' -f1-3): send-proxy on $FRONT:$V1_PORT, send-proxy-v2 on $FRONT:$V2_PORT"

# send NAME CLIENT PORT EXPECT: swaks from CLIENT through the frontend on PORT, direct send as
# ceo@contoso.com; the transcript must contain the reply EXPECT (a regex).
send() {
    local name=$1 client=$2 port=$3 expect=$4
    swaks --server "$FRONT:$port" --local-interface "$client" --timeout 20 \
        --from ceo@contoso.com --to bob@contoso.com --h-Subject "$name" >"$TMP/$name.swaks" 2>&1 || true
    grep -Eq "^<[-*]+ +$expect" "$TMP/$name.swaks" || fail "$name: expected '$expect'" "$TMP/$name.swaks"
}

send v1-onprem 127.0.0.31 "$V1_PORT" '250 2\.6\.0 Queued as'
send v1-stranger 127.0.0.32 "$V1_PORT" '550 5\.7\.68 TenantInboundAttribution'
ok "PROXY v1: the connector's address is attributed (250), another client's direct send is refused (550 5.7.68)"
send v2-onprem 127.0.0.31 "$V2_PORT" '250 2\.6\.0 Queued as'
send v2-stranger 127.0.0.32 "$V2_PORT" '550 5\.7\.68 TenantInboundAttribution'
ok "PROXY v2: the same decisions"

# The trace: four records, each under its real client, each through the balancer.
for _ in $(seq 50); do
    "$BIN" trace --tenant contoso --json >"$TMP/trace.json"
    [[ $(jq length "$TMP/trace.json") == 4 ]] && break
    sleep 0.2
done
jq -e 'length == 4' "$TMP/trace.json" >/dev/null || fail "expected 4 trace records" "$TMP/trace.json"
jq -e 'all(.[]; .proxy_ip == "127.0.0.61")' "$TMP/trace.json" >/dev/null ||
    fail "every record names the balancer as proxy_ip" "$TMP/trace.json"
jq -e '[.[] | select(.client_ip == "127.0.0.31")] | length == 2 and all(.[]; .attribution == "connector" and .status != "rejected")' \
    "$TMP/trace.json" >/dev/null || fail "127.0.0.31: two attributed, accepted records" "$TMP/trace.json"
jq -e '[.[] | select(.client_ip == "127.0.0.32")] | length == 2 and all(.[]; .status == "rejected" and .direct_send)' \
    "$TMP/trace.json" >/dev/null || fail "127.0.0.32: two refused direct sends" "$TMP/trace.json"
ok "trace: client_ip is the real client (127.0.0.31 attributed, 127.0.0.32 refused), proxy_ip the balancer"
"$BIN" trace --tenant contoso --from-ip 127.0.0.61 --json >"$TMP/by-balancer.json"
jq -e 'length == 0' "$TMP/by-balancer.json" >/dev/null || fail "no record under the balancer's address" "$TMP/by-balancer.json"
ok "trace --from-ip 127.0.0.61 (the balancer) finds nothing"

pc report direct-send --tenant contoso --format json >"$TMP/report.json"
grep -q '127.0.0.32' "$TMP/report.json" || fail "the Direct Send report names 127.0.0.32" "$TMP/report.json"
! grep -q '127.0.0.61' "$TMP/report.json" || fail "the Direct Send report never names the balancer" "$TMP/report.json"
ok "Direct Send report: the refused source is 127.0.0.32, never the balancer"

# From the balancer's address without a header: no banner, and the log says why.
swaks --server "127.0.0.1:$SMTP_PORT" --local-interface $BALANCER_OUT --timeout 10 \
    --from a@example.org --to bob@contoso.com >"$TMP/no-header.swaks" 2>&1 || true
! grep -q '^<- *220' "$TMP/no-header.swaks" || fail "a headerless connection from the balancer got a banner" "$TMP/no-header.swaks"
for _ in $(seq 50); do
    grep -q 'connection closed: ' "$TMP/server.log" && break
    sleep 0.1
done
grep -q 'connection closed: no whole PROXY header within 2s balancer=127.0.0.61:' "$TMP/server.log" ||
    fail "the log names the balancer and why its connection was closed" "$TMP/no-header.swaks"
ok "from $BALANCER_OUT without a PROXY header: closed before any banner, logged"

# From an untrusted client, PROXY is an unknown command.

exec 3<>"/dev/tcp/127.0.0.1/$SMTP_PORT"
read -r -t 5 banner <&3 || true
printf 'PROXY TCP4 127.0.0.31 127.0.0.1 1 25\r\nQUIT\r\n' >&3
read -r -t 5 answer <&3 || true
exec 3<&- 3>&-
[[ $banner == 220* && $answer == "500 5.5.2"* ]] || fail "untrusted PROXY line: banner '$banner', answer '$answer'"
ok "from an untrusted client a PROXY line is an unknown command (500 5.5.2)"

echo "# proxy interop: $PASSED checks passed in $(($(date +%s) - START)) s"
