#!/usr/bin/env bash
# Drives the README walk-through against the real `portcullis` binary with swaks and openssl, and
# asserts every reply, header, trace record and exit status the README and SPEC promise.
#
# Usage: tests/interop/walkthrough.sh            (binary: target/debug/portcullis, or $PORTCULLIS_BIN)
# Needs: swaks (+ libnet-ssleay-perl for --tls), openssl, jq, knot + knot-dnsutils (the gateway's DNS:
# knotd on 127.0.0.1:5353, see lib.sh; without a DNS server anonymous mail gets SPF temperror, 451).
# Uses only 127.0.0.x addresses.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/interop/lib.sh
source "$ROOT/tests/interop/lib.sh"
BIN=${PORTCULLIS_BIN:-$ROOT/target/debug/portcullis}
[[ -x $BIN ]] || { echo "FATAL: $BIN not found; run 'cargo build -p portcullis' first" >&2; exit 1; }
for tool in swaks openssl jq knotd kdig; do
    command -v "$tool" >/dev/null || { echo "FATAL: $tool is not installed" >&2; exit 1; }
done

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

FAIL_LOGS=("$TMP/server.log")

# ---------------------------------------------------------------------------------------------
# Certificates: a test CA, a client certificate it signs, and a rogue CA issuing the same name.
# ---------------------------------------------------------------------------------------------
echo "# generating certificates in $TMP"
cd "$TMP"
{
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=Contoso Test CA" \
        -keyout ca.key -out ca.crt
    openssl req -newkey rsa:2048 -nodes -subj "/CN=mx1.relay.contoso.com" \
        -keyout client.key -out client.csr
    printf 'subjectAltName=DNS:mx1.relay.contoso.com\nextendedKeyUsage=clientAuth\n' > client.ext
    openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
        -out client.crt -extfile client.ext

    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=Contoso Test CA" \
        -keyout rogue-ca.key -out rogue-ca.crt
    openssl req -newkey rsa:2048 -nodes -subj "/CN=mx1.relay.contoso.com" \
        -keyout rogue.key -out rogue.csr
    openssl x509 -req -in rogue.csr -CA rogue-ca.crt -CAkey rogue-ca.key -CAcreateserial -days 30 \
        -out rogue.crt -extfile client.ext
} >"$TMP/openssl.log" 2>&1 || fail "openssl certificate generation" "$TMP/openssl.log"
openssl verify -CAfile ca.crt client.crt >/dev/null 2>&1 || fail "client.crt does not verify against ca.crt"
if openssl verify -CAfile ca.crt rogue.crt >/dev/null 2>&1; then fail "rogue.crt verifies against ca.crt"; fi
ok "certificates generated (test CA, client, rogue CA)"

# ---------------------------------------------------------------------------------------------
# DNS for email authentication: knot serves the domains the walk-through sends from.
# contoso.com and fabrikam.com publish SPF for their own server (127.0.0.1); fabrikam.example, the
# foreign sender, for 127.0.0.2, where it sends from. No DKIM, no DMARC records.
# ---------------------------------------------------------------------------------------------
mkdir -p "$TMP/dns"
printf '@ TXT "v=spf1 ip4:127.0.0.1 -all"\n' >"$TMP/dns/contoso.com.zone"
printf '@ TXT "v=spf1 ip4:127.0.0.1 -all"\n' >"$TMP/dns/fabrikam.com.zone"
printf '@ TXT "v=spf1 ip4:127.0.0.2 -all"\n' >"$TMP/dns/fabrikam.example.zone"
start_knot "$TMP/knot" "$TMP"/dns/*.zone || fail "knot did not start" "$TMP/knot/knot.log"
ok "knot serving contoso.com, fabrikam.com, fabrikam.example on 127.0.0.1:$KNOT_PORT"

# ---------------------------------------------------------------------------------------------
# Start the gateway on ephemeral ports.
# ---------------------------------------------------------------------------------------------
DATA=$TMP/data
printf '[tls]\nclient_ca_file = "%s"\n\n[dns]\nnameservers = ["127.0.0.1:%s"]\ntimeout = "1s"\n' \
    "$TMP/ca.crt" "$KNOT_PORT" > "$TMP/portcullis.toml"

NO_COLOR=1 "$BIN" serve --config "$TMP/portcullis.toml" --data-dir "$DATA" \
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
[[ -s $DATA/admin.token ]] || fail "no admin token in $DATA"
ok "server started: SMTP 127.0.0.1:$SMTP_PORT, admin $ADMIN_URL"

export PORTCULLIS_SERVER=$ADMIN_URL PORTCULLIS_DATA_DIR=$DATA
unset PORTCULLIS_TOKEN

N=0
# pc ARGS...: a CLI call that must succeed.
pc() {
    N=$((N + 1))
    local out=$TMP/cli.$N rc=0
    "$BIN" "$@" >"$out" 2>&1 || rc=$?
    [[ $rc == 0 ]] || fail "portcullis $* (exit status $rc)" "$out"
    cat "$out"
}

# smtp NAME ARGS...: run swaks against the gateway; the transcript goes to $TMP/NAME.swaks.
# A refusal makes swaks exit non-zero, which is an expected outcome here, not an error.
smtp() {
    local name=$1; shift
    local rc=0
    swaks --server "127.0.0.1:$SMTP_PORT" --timeout 20 "$@" >"$TMP/$name.swaks" 2>&1 || rc=$?
    echo "$rc" >"$TMP/$name.rc"
}

# expect_line NAME REGEX DESCRIPTION: the swaks transcript NAME has a line matching REGEX.
expect_line() {
    local name=$1 re=$2 what=$3
    grep -Eq -- "$re" "$TMP/$name.swaks" || fail "$what: no line matching /$re/" "$TMP/$name.swaks"
}

DS_REPLY='550 5.7.68 TenantInboundAttribution; Direct Send not allowed for this organization from unauthorized sources'
RELAY_REPLY='550 5.7.64 TenantAttribution; Relay Access Denied'

# replies NAME: the server's reply lines in the swaks transcript NAME, without swaks' markers
# ("<-  " plain, "<~  " inside TLS, "<** " / "<~* " for errors).
replies() {
    sed -nE 's/^<(-|~|\*\*|~\*) +//p' "$TMP/$1.swaks" | tr -d '\r'
}

# expect_refused NAME REPLY: RCPT TO was refused with exactly REPLY, nothing was queued.
expect_refused() {
    local name=$1 reply=$2
    # swaks marks error replies "<**" in plain text and "<~*" inside TLS.
    grep -Eq -- '^<(\*\*|~\*) ' "$TMP/$name.swaks" && replies "$name" | grep -Fxq -- "$reply" ||
        fail "$name: expected the reply '$reply'" "$TMP/$name.swaks"
    if grep -q 'Queued as' "$TMP/$name.swaks"; then fail "$name: refused but queued" "$TMP/$name.swaks"; fi
    [[ $(cat "$TMP/$name.rc") != 0 ]] || fail "$name: swaks exited 0 after a refusal" "$TMP/$name.swaks"
}

# expect_queued NAME: the message was accepted; prints the trace id from "250 2.6.0 Queued as ID".
expect_queued() {
    local name=$1 id
    id=$(replies "$name" | sed -nE 's/^250 2\.6\.0 Queued as ([A-Za-z0-9]+)$/\1/p')
    [[ -n $id ]] || fail "$name: expected the reply '250 2.6.0 Queued as <ID>'" "$TMP/$name.swaks"
    [[ $(cat "$TMP/$name.rc") == 0 ]] || fail "$name: swaks exited $(cat "$TMP/$name.rc")" "$TMP/$name.swaks"
    echo "$id"
}

# ---------------------------------------------------------------------------------------------
# Walk-through: tenant, accepted domain, enforcement.
# ---------------------------------------------------------------------------------------------
pc tenant add contoso >/dev/null
pc domain add contoso.com --tenant contoso >/dev/null
pc org set --tenant contoso --reject-direct-send on >/dev/null
pc org show --tenant contoso --json >"$TMP/org.json"
jq -e '.. | objects | select(has("reject_direct_send")) | .reject_direct_send == "on"' "$TMP/org.json" >/dev/null ||
    fail "org show: reject_direct_send is not on" "$TMP/org.json"
ok "tenant contoso with contoso.com, reject-direct-send on"

smtp ds-refused --from ceo@contoso.com --to bob@contoso.com
replies ds-refused | head -n 1 | grep -Eq '^220 [^ ]+ ESMTP Portcullis$' ||
    fail "banner: expected '220 <hostname> ESMTP Portcullis'" "$TMP/ds-refused.swaks"
ok "banner: 220 <hostname> ESMTP Portcullis"
expect_refused ds-refused "$DS_REPLY"
ok "direct send from 127.0.0.1 refused: 550 5.7.68"

pc connector add "Contoso on-prem" --tenant contoso --type on-premises --sender-ip 127.0.0.1/32 >/dev/null
ok "connector \"Contoso on-prem\" (on-premises, 127.0.0.1/32) added"

smtp onprem --from ceo@contoso.com --to bob@contoso.com
ID_ONPREM=$(expect_queued onprem)
ok "attributed mail from 127.0.0.1 queued as $ID_ONPREM"

smtp ds-other-ip --local-interface 127.0.0.2 --from ceo@contoso.com --to bob@contoso.com
expect_refused ds-other-ip "$DS_REPLY"
ok "direct send from 127.0.0.2 (not the connector's IP) refused: 550 5.7.68"

# Nobody outside may forge the gateway's own headers: these must be gone from the delivered copy.
smtp foreign --local-interface 127.0.0.2 --from alice@fabrikam.example --to bob@contoso.com \
    --add-header 'X-Portcullis-Attribution: tenant=contoso; auth-as=on-premises; connector="forged"' \
    --add-header 'X-Portcullis-Direct-Send: forged'
ID_FOREIGN=$(expect_queued foreign)
ok "foreign sender from 127.0.0.2 queued as $ID_FOREIGN"

# ---------------------------------------------------------------------------------------------
# Attribution by TLS client certificate.
# ---------------------------------------------------------------------------------------------
pc connector add relay --tenant contoso --tls-cert-name '*.relay.contoso.com' >/dev/null
ok "connector relay (*.relay.contoso.com) added"

smtp cert --local-interface 127.0.0.3 --tls --tls-cert "$TMP/client.crt" --tls-key "$TMP/client.key" \
    --from ceo@contoso.com --to bob@contoso.com
expect_line cert '^=== TLS started with cipher ' "trusted certificate: STARTTLS"
ID_CERT=$(expect_queued cert)
ok "trusted client certificate from 127.0.0.3: TLS started, queued as $ID_CERT"

smtp rogue --local-interface 127.0.0.3 --tls --tls-cert "$TMP/rogue.crt" --tls-key "$TMP/rogue.key" \
    --from ceo@contoso.com --to bob@contoso.com
expect_line rogue '^=== TLS started with cipher ' "rogue certificate: handshake must still succeed"
expect_refused rogue "$DS_REPLY"
ok "rogue client certificate: TLS started, direct send refused: 550 5.7.68"

# ---------------------------------------------------------------------------------------------
# Audit mode, null sender, unknown domain.
# ---------------------------------------------------------------------------------------------
pc tenant add fabrikam >/dev/null
pc domain add fabrikam.com --tenant fabrikam >/dev/null
pc org set --tenant fabrikam --reject-direct-send audit >/dev/null
smtp audit --local-interface 127.0.0.4 --from ceo@fabrikam.com --to carol@fabrikam.com
ID_AUDIT=$(expect_queued audit)
ok "audit mode: direct send to fabrikam accepted as $ID_AUDIT"

smtp null --local-interface 127.0.0.2 --from '<>' --to bob@contoso.com
expect_line null '^ -> MAIL FROM:<>' "null sender"
ID_NULL=$(expect_queued null)
ok "null sender from 127.0.0.2 accepted as $ID_NULL (never direct send)"

smtp unknown --local-interface 127.0.0.2 --from alice@fabrikam.example --to someone@nowhere.example
expect_refused unknown "$RELAY_REPLY"
ok "recipient in an unknown domain refused: 550 5.7.64"

# ---------------------------------------------------------------------------------------------
# Delivery to Maildir and the headers it carries.
# ---------------------------------------------------------------------------------------------
# headers FILE: the header section of a message, folded lines joined.
headers() {
    sed -e 's/\r$//' -e '/^$/q' "$1" | awk '/^[ \t]/ { sub(/^[ \t]+/, " "); line = line $0; next }
        { if (line != "") print line; line = $0 } END { if (line != "") print line }'
}

# find_mail DIR ID: the Maildir file in DIR whose content mentions ID (waits up to 5 s).
find_mail() {
    local dir=$1 id=$2 f
    for _ in $(seq 50); do
        if [[ -d $dir ]]; then
            f=$(grep -rlF -- "$id" "$dir" 2>/dev/null | head -n 1 || true)
            [[ -n $f ]] && { echo "$f"; return 0; }
        fi
        sleep 0.1
    done
    return 1
}

BOB=$DATA/mail/contoso/bob@contoso.com/new
MAIL_ONPREM=$(find_mail "$BOB" "$ID_ONPREM") ||
    fail "no Maildir file for $ID_ONPREM under $BOB" <(ls -laR "$DATA/mail" 2>&1)
grep -Fq 'X-Portcullis-Attribution: tenant=contoso; auth-as=on-premises; connector="Contoso on-prem"' "$MAIL_ONPREM" ||
    fail "on-prem message lacks its X-Portcullis-Attribution header" "$MAIL_ONPREM"
headers "$MAIL_ONPREM" | grep -Eq '^Received: from [^ ]+ \(\[127\.0\.0\.1\]\) .* with ESMTP ' ||
    fail "on-prem message: no 'Received: from ... ([127.0.0.1]) ... with ESMTP' (plain text session)" "$MAIL_ONPREM"
ok "Maildir: on-prem message has auth-as=on-premises; connector=\"Contoso on-prem\" and Received ... with ESMTP"

MAIL_FOREIGN=$(find_mail "$BOB" "$ID_FOREIGN") || fail "no Maildir file for $ID_FOREIGN under $BOB" <(ls -laR "$DATA/mail" 2>&1)
{ [[ $(headers "$MAIL_FOREIGN" | grep -ci '^X-Portcullis-') == 1 ]] &&
    headers "$MAIL_FOREIGN" | grep -Eq '^X-Portcullis-Attribution: tenant=contoso; auth-as=anonymous'; } ||
    fail "foreign message: forged X-Portcullis-* headers must be replaced by one auth-as=anonymous header" "$MAIL_FOREIGN"
if grep -qi 'forged' "$MAIL_FOREIGN"; then fail "foreign message still carries the forged X-Portcullis-* headers" "$MAIL_FOREIGN"; fi
ok "Maildir: forged X-Portcullis-* headers removed; foreign message is auth-as=anonymous"
headers "$MAIL_FOREIGN" | grep -Eq '^Authentication-Results: [^;]+; .*spf=pass .*smtp\.mailfrom=alice@fabrikam\.example.*; compauth=pass reason=102$' ||
    fail "foreign message: expected Authentication-Results with spf=pass smtp.mailfrom=alice@fabrikam.example and compauth=pass reason=102" "$MAIL_FOREIGN"
ok "Maildir: foreign message from 127.0.0.2 has spf=pass (fabrikam.example allows 127.0.0.2), compauth=pass reason=102"

MAIL_CERT=$(find_mail "$BOB" "$ID_CERT") || fail "no Maildir file for $ID_CERT under $BOB" <(ls -laR "$DATA/mail" 2>&1)
grep -Fq 'X-Portcullis-Attribution: tenant=contoso; auth-as=partner; connector="relay"' "$MAIL_CERT" ||
    fail "certificate message lacks its X-Portcullis-Attribution header" "$MAIL_CERT"
headers "$MAIL_CERT" | grep -Eq '^Received: .* with ESMTPS \(version=TLSv1\.[23] cipher=' ||
    fail "certificate message: no 'Received: ... with ESMTPS (version=TLSv1.x cipher=...'" "$MAIL_CERT"
ok "Maildir: certificate message has auth-as=partner; connector=\"relay\" and Received ... ESMTPS (version=TLSv1.x"

MAIL_AUDIT=$(find_mail "$DATA/mail/fabrikam/carol@fabrikam.com/new" "$ID_AUDIT") ||
    fail "no Maildir file for $ID_AUDIT" <(ls -laR "$DATA/mail" 2>&1)
grep -Fq 'X-Portcullis-Direct-Send: audit' "$MAIL_AUDIT" || fail "audit message lacks X-Portcullis-Direct-Send: audit" "$MAIL_AUDIT"
ok "Maildir: audit-mode message has X-Portcullis-Direct-Send: audit"

[[ -z $(ls -A "$DATA/mail/contoso" 2>/dev/null | grep -v '^bob@contoso.com$' || true) ]] ||
    fail "unexpected mailboxes under mail/contoso" <(ls -laR "$DATA/mail")
[[ $(find "$BOB" -type f | wc -l) -eq 4 ]] ||
    fail "expected exactly 4 messages for bob (on-prem, foreign, certificate, null sender)" <(ls -la "$BOB")
ok "Maildir: bob@contoso.com has exactly the 4 accepted messages, refused ones are absent"

# ---------------------------------------------------------------------------------------------
# Message trace.
# ---------------------------------------------------------------------------------------------
pc trace --tenant contoso >"$TMP/trace.txt"
for id in "$ID_ONPREM" "$ID_FOREIGN" "$ID_CERT" "$ID_NULL"; do
    grep -qF "$id" "$TMP/trace.txt" || fail "trace listing lacks $id" "$TMP/trace.txt"
done
ok "trace (table) lists the 4 accepted messages"

pc trace --tenant contoso --json >"$TMP/trace.json"
jq -e 'type == "array"' "$TMP/trace.json" >/dev/null || fail "trace --json is not a JSON array" "$TMP/trace.json"

# jq_check DESCRIPTION FILTER [jq args...]: FILTER evaluated on trace.json must be true.
jq_check() {
    local what=$1 filter=$2; shift 2
    jq -e "$@" "$filter" "$TMP/trace.json" >/dev/null || fail "trace: $what (jq: $filter)" "$TMP/trace.json"
    ok "trace: $what"
}

jq_check "3 refused direct-send transactions, each rejected with 550 5.7.68" \
    '[.[] | select(.status == "rejected" and .direct_send == true
               and (.recipients[0].reply | startswith("550 5.7.68")))] | length == 3'
jq_check "refused direct send from 127.0.0.1 and 127.0.0.2 are anonymous" \
    '[.[] | select(.status == "rejected" and .direct_send == true and .attribution == "anonymous")
          | .client_ip] | (index("127.0.0.1") != null and index("127.0.0.2") != null)'
jq_check "certificate transaction: trusted certificate, connector relay" \
    '[.[] | select(.trace_id == $id)][0] | (.tls.client_cert_trusted == true and .connector == "relay"
          and .attribution == "connector" and .direct_send == false and .client_ip == "127.0.0.3")' \
    --arg id "$ID_CERT"
jq_check "rogue-certificate transaction: untrusted certificate, rejected" \
    '[.[] | select(.client_ip == "127.0.0.3" and .status == "rejected")] | length == 1
          and .[0].tls.client_cert_trusted == false and .[0].connector == null
          and .[0].direct_send == true and (.[0].tls.version | startswith("TLSv1."))'
jq_check "on-prem transaction attributed to \"Contoso on-prem\"" \
    '[.[] | select(.trace_id == $id)][0] | (.connector == "Contoso on-prem" and .attribution == "connector")' \
    --arg id "$ID_ONPREM"
jq_check "null-sender transaction is not direct send" \
    '[.[] | select(.trace_id == $id)][0] | (.direct_send == false and (.mail_from == "<>" or .mail_from == "") and .status != "rejected")' --arg id "$ID_NULL"
jq_check "fabrikam's audit record is not visible in contoso's trace" \
    '[.[] | select(.trace_id == $id)] | length == 0' --arg id "$ID_AUDIT"

pc trace show "$ID_CERT" --tenant contoso --json >"$TMP/show.json"
jq -e --arg id "$ID_CERT" '.trace_id == $id and .tenant == "contoso" and .connector == "relay"
        and .recipients[0].address == "bob@contoso.com"' "$TMP/show.json" >/dev/null ||
    fail "trace show $ID_CERT" "$TMP/show.json"
ok "trace show $ID_CERT returns its record"

pc trace show "$ID_ONPREM" --tenant contoso >"$TMP/show.txt"
grep -qF "$ID_ONPREM" "$TMP/show.txt" && grep -qF 'Contoso on-prem' "$TMP/show.txt" ||
    fail "trace show $ID_ONPREM (text) lacks the id or the connector" "$TMP/show.txt"
ok "trace show $ID_ONPREM (text) names the id and the connector"

pc trace show "$ID_AUDIT" --tenant fabrikam --json >"$TMP/audit.json"
jq -e '.direct_send == true and ([.events[] | select(.event == "AUDIT")] | length >= 1)' "$TMP/audit.json" >/dev/null ||
    fail "audit trace record: direct_send true with an AUDIT event" "$TMP/audit.json"
ok "fabrikam trace: audit record has direct_send true and an AUDIT event"

# The trace writer batches: wait for the delivered status.
for id in "$ID_ONPREM" "$ID_CERT"; do
    status=
    for _ in $(seq 50); do
        "$BIN" trace show "$id" --tenant contoso --json >"$TMP/status.json" 2>&1 || true
        status=$(jq -r '.status' "$TMP/status.json" 2>/dev/null || true)
        [[ $status == delivered ]] && break
        sleep 0.1
    done
    [[ $status == delivered ]] || fail "trace status of $id is '$status', expected delivered within 5 s" "$TMP/status.json"
    ok "trace: $id reaches status delivered"
done

pc trace --tenant contoso --status rejected --json >"$TMP/rejected.json"
jq -e 'length == 3 and all(.[]; .status == "rejected")' "$TMP/rejected.json" >/dev/null ||
    fail "trace --status rejected" "$TMP/rejected.json"
ok "trace --status rejected lists exactly the 3 refusals"

# ---------------------------------------------------------------------------------------------
# Bad CLI input: exit 2, a message naming the value, nothing changed.
# ---------------------------------------------------------------------------------------------
# expect_usage_error VALUE ARGS...: `portcullis ARGS` exits 2 and stderr names VALUE.
expect_usage_error() {
    local value=$1; shift
    local rc=0
    "$BIN" "$@" >"$TMP/bad.out" 2>"$TMP/bad.err" || rc=$?
    [[ $rc == 2 ]] || fail "portcullis $*: exit status $rc, expected 2" "$TMP/bad.out" "$TMP/bad.err"
    grep -qF -- "$value" "$TMP/bad.err" || fail "portcullis $*: stderr does not name '$value'" "$TMP/bad.err"
    ok "portcullis $* → exit 2 naming '$value'"
}
expect_usage_error 10.0.0.0/33 connector add x --tenant contoso --sender-ip 10.0.0.0/33
expect_usage_error maybe org set --tenant contoso --reject-direct-send maybe
pc connector list --tenant contoso --json >"$TMP/connectors.json"
jq -e '[.. | objects | select(.name? == "x")] | length == 0' "$TMP/connectors.json" >/dev/null ||
    fail "connector x was created despite the bad CIDR" "$TMP/connectors.json"
pc org show --tenant contoso --json >"$TMP/org.json"
jq -e '.. | objects | select(has("reject_direct_send")) | .reject_direct_send == "on"' "$TMP/org.json" >/dev/null ||
    fail "org show: reject_direct_send changed after the bad org set" "$TMP/org.json"
ok "nothing changed: no connector x, reject_direct_send still on"

# ---------------------------------------------------------------------------------------------
# Graceful shutdown.
# ---------------------------------------------------------------------------------------------
kill -TERM "$SERVER_PID"
rc=
for _ in $(seq 100); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        rc=0; wait "$SERVER_PID" || rc=$?
        break
    fi
    sleep 0.1
done
[[ -n $rc ]] || fail "server still running 10 s after SIGTERM"
SERVER_PID=
[[ $rc == 0 ]] || fail "server exited with status $rc after SIGTERM" "$TMP/server.log"
ok "SIGTERM: server exited 0"

echo "# all $PASSED checks passed in $(($(date +%s) - START)) s"
