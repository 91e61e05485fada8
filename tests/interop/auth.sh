#!/usr/bin/env bash
# Email authentication (SPEC §4) against the real `portcullis` binary, with third-party peers only:
# knot serves the DNS, dkimpy's `dknewkey`/`dkimsign`/`arcsign` make keys, signatures and ARC seals,
# swaks sends. Asserts exact replies, the Authentication-Results header of the delivered copies and
# the trace's auth object.
#
# Usage: tests/interop/auth.sh              (binary: target/debug/portcullis, or $PORTCULLIS_BIN)
# Needs: swaks, jq, knot + knot-dnsutils, python3-dkim + python3-authres (+ python3-nacl for ed25519).
# Uses only 127.0.0.x addresses; knot on 127.0.0.1:$KNOT_PORT (default 5353).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/interop/lib.sh
source "$ROOT/tests/interop/lib.sh"
BIN=${PORTCULLIS_BIN:-$ROOT/target/debug/portcullis}
[[ -x $BIN ]] || { echo "FATAL: $BIN not found; run 'cargo build -p portcullis' first" >&2; exit 1; }
for tool in swaks jq knotd kdig dknewkey dkimsign arcsign python3; do
    command -v "$tool" >/dev/null || { echo "FATAL: $tool is not installed" >&2; exit 1; }
done

TMP=$(mktemp -d)
SERVER_PID=
HOLE_PID=
HOST=mx.portcullis.test

cleanup() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ -n $HOLE_PID ]] && kill -0 "$HOLE_PID" 2>/dev/null; then
        kill -KILL "$HOLE_PID" 2>/dev/null || true
        wait "$HOLE_PID" 2>/dev/null || true
    fi
    stop_knot
    [[ -n ${KEEP_TMP:-} ]] && echo "# kept $TMP" >&2 || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

FAIL_LOGS=("$TMP/server.log")

# ---------------------------------------------------------------------------------------------
# Keys and zones.
#   tailspin.example   SPF for 127.0.0.1 only; no DKIM, no DMARC          (SPF cases)
#   adatum.example     SPF 127.0.0.1; DKIM rsa2048 (RSA) and ed (Ed25519)  (DKIM cases)
#   woodgrove.example  SPF 127.0.0.1; DKIM s1; DMARC p=reject              (DMARC pass/reject, tree walk)
#   litware.example    SPF -all; DMARC p=quarantine                        (quarantine)
#   contoso.com        the tenant: SPF 127.0.0.1; DKIM s1 (own server) and saas (a SaaS sender it
#                      delegated a key to); DMARC p=none
#   forwarder.example  a mailing list on 127.0.0.5 that ARC-seals with selector arc
# ---------------------------------------------------------------------------------------------
mkdir -p "$TMP/keys" "$TMP/dns" "$TMP/msg"
cd "$TMP/keys"
ED25519=1
{
    dknewkey adatum-rsa
    dknewkey woodgrove
    dknewkey contoso
    dknewkey contoso-saas
    dknewkey forwarder
    dknewkey unpublished
} >"$TMP/dknewkey.log" 2>&1 || fail "dknewkey" "$TMP/dknewkey.log"
dknewkey --ktype ed25519 adatum-ed >>"$TMP/dknewkey.log" 2>&1 || ED25519=
cd "$TMP"

# txt NAME KEYNAME: the TXT record publishing keys/KEYNAME.dns (split into 255-byte strings).
txt() { printf '%s 3600 IN TXT %s\n' "$1" "$(txt_rdata "$(cat "$TMP/keys/$2.dns")")"; }

cat >"$TMP/dns/tailspin.example.zone" <<'EOF'
@ TXT "v=spf1 ip4:127.0.0.1 -all"
EOF
{
    echo '@ TXT "v=spf1 ip4:127.0.0.1 -all"'
    txt rsa2048._domainkey adatum-rsa
    [[ -n $ED25519 ]] && txt ed._domainkey adatum-ed
} >"$TMP/dns/adatum.example.zone"
{
    echo '@ TXT "v=spf1 ip4:127.0.0.1 -all"'
    echo '_dmarc TXT "v=DMARC1; p=reject"'
    txt s1._domainkey woodgrove
} >"$TMP/dns/woodgrove.example.zone"
cat >"$TMP/dns/litware.example.zone" <<'EOF'
@ TXT "v=spf1 -all"
_dmarc TXT "v=DMARC1; p=quarantine"
EOF
{
    echo '@ TXT "v=spf1 ip4:127.0.0.1 -all"'
    echo '_dmarc TXT "v=DMARC1; p=none"'
    txt s1._domainkey contoso
    txt saas._domainkey contoso-saas
} >"$TMP/dns/contoso.com.zone"
{
    echo '@ TXT "v=spf1 ip4:127.0.0.5 -all"'
    txt arc._domainkey forwarder
} >"$TMP/dns/forwarder.example.zone"

# The longest record must really be split: a 2048-bit RSA key is ~400 bytes.
grep -Eq 'rsa2048\._domainkey 3600 IN TXT "[^"]{255}" "' "$TMP/dns/adatum.example.zone" ||
    fail "DKIM TXT record not split into 255-byte strings" "$TMP/dns/adatum.example.zone"

start_knot "$TMP/knot" "$TMP"/dns/*.zone || fail "knot did not start" "$TMP/knot/knot.log"
kdig @127.0.0.1 -p "$KNOT_PORT" +short rsa2048._domainkey.adatum.example TXT | tr -d '" \n' |
    grep -qF "$(tr -d ' \n' <"$TMP/keys/adatum-rsa.dns")" ||
    fail "kdig: the RSA key served by knot differs from adatum-rsa.dns" "$TMP/dns/adatum.example.zone"
ok "knot serving 6 zones and their parents on 127.0.0.1:$KNOT_PORT; 2048-bit DKIM key split and served whole"

# ---------------------------------------------------------------------------------------------
# Start the gateway.
# ---------------------------------------------------------------------------------------------
DATA=$TMP/data
cat >"$TMP/portcullis.toml" <<EOF
hostname = "$HOST"

[dns]
nameservers = ["127.0.0.1:$KNOT_PORT"]
timeout = "1s"

[auth]
enabled = true
EOF
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
ok "server started: SMTP 127.0.0.1:$SMTP_PORT, admin $ADMIN_URL, DNS 127.0.0.1:$KNOT_PORT"
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

# smtp NAME ARGS...: swaks against the gateway; transcript in $TMP/NAME.swaks, exit status in NAME.rc.
smtp() {
    local name=$1; shift
    local rc=0
    swaks --server "127.0.0.1:$SMTP_PORT" --timeout 30 --helo client.portcullis.test "$@" \
        >"$TMP/$name.swaks" 2>&1 || rc=$?
    echo "$rc" >"$TMP/$name.rc"
}

# replies NAME: the server's reply lines, without swaks' markers.
replies() { sed -nE 's/^<(-|~|\*\*|~\*) +//p' "$TMP/$1.swaks" | tr -d '\r'; }

# expect_refused NAME STAGE REPLY: refused with exactly REPLY at STAGE (rcpt: the reply to RCPT TO;
# data: the reply after the message), nothing queued.
expect_refused() {
    local name=$1 stage=$2 reply=$3 got
    case $stage in
        rcpt) got=$(sed -nE '/^ -> RCPT TO/{n; s/^<(\*\*|-) +//p}' "$TMP/$name.swaks" | tr -d '\r') ;;
        data) got=$(sed -nE '/^ -> \.$/{n; s/^<(\*\*|-) +//p}' "$TMP/$name.swaks" | tr -d '\r') ;;
    esac
    [[ $got == "$reply" ]] || fail "$name: expected '$reply' at $stage, got '$got'" "$TMP/$name.swaks"
    if grep -q 'Queued as' "$TMP/$name.swaks"; then fail "$name: refused but queued" "$TMP/$name.swaks"; fi
    [[ $(cat "$TMP/$name.rc") != 0 ]] || fail "$name: swaks exited 0 after a refusal" "$TMP/$name.swaks"
}

# expect_queued NAME: accepted; prints the trace id.
expect_queued() {
    local name=$1 id
    id=$(replies "$name" | sed -nE 's/^250 2\.6\.0 Queued as ([A-Za-z0-9]+)$/\1/p')
    [[ -n $id ]] || fail "$name: expected '250 2.6.0 Queued as <ID>'" "$TMP/$name.swaks"
    [[ $(cat "$TMP/$name.rc") == 0 ]] || fail "$name: swaks exited $(cat "$TMP/$name.rc")" "$TMP/$name.swaks"
    echo "$id"
}

# headers FILE: the header section, folded lines joined (a fold becomes one space).
headers() {
    sed -e 's/\r$//' -e '/^$/q' "$1" | awk '/^[ \t]/ { sub(/^[ \t]+/, " "); line = line $0; next }
        { if (line != "") print line; line = $0 } END { if (line != "") print line }'
}

# mail_of ID: the delivered Maildir file of trace ID under bob@contoso.com (waits up to 5 s).
BOB=$DATA/mail/contoso/bob@contoso.com/new
mail_of() {
    local id=$1 f
    for _ in $(seq 50); do
        f=$(grep -rlF -- "id $id" "$BOB" 2>/dev/null | head -n 1 || true)
        [[ -n $f ]] && { echo "$f"; return 0; }
        sleep 0.1
    done
    fail "no Maildir file for $id under $BOB" <(ls -laR "$DATA/mail" 2>&1)
}

# ar_of FILE: our Authentication-Results header (unfolded, "; " between results). There must be
# exactly one with our authserv-id.
ar_of() {
    local file=$1 ars
    ars=$(headers "$file" | grep -i "^Authentication-Results: $HOST;" || true)
    [[ $(grep -c . <<<"$ars") == 1 ]] ||
        fail "$(basename "$file"): expected exactly one 'Authentication-Results: $HOST; ...' header" "$file"
    echo "$ars"
}

# expect_ar NAME ID REGEX...: message ID was delivered and its Authentication-Results matches every
# REGEX (extended, matched against the unfolded header).
expect_ar() {
    local name=$1 id=$2 file ar re; shift 2
    file=$(mail_of "$id")
    ar=$(ar_of "$file")
    for re in "$@"; do
        grep -Eq -- "$re" <<<"$ar" || fail "$name: Authentication-Results does not match /$re/: $ar" "$file"
    done
}

# has_header ID LINE / lacks_header ID REGEX on the delivered copy's header section.
has_header() {
    local file; file=$(mail_of "$1")
    headers "$file" | grep -Fxq -- "$2" || fail "message $1 lacks the header '$2'" "$file"
}
lacks_header() {
    local file; file=$(mail_of "$1")
    if headers "$file" | grep -Eiq -- "$2"; then fail "message $1 has a header matching /$2/" "$file"; fi
}

# message FILE FROM-HEADER SUBJECT [BODY-LINE]: a plain RFC 5322 message with CRLF line ends, as
# on the wire (arcsign's seal does not verify when it is given LF line ends).
message() {
    local file=$1 from=$2 subject=$3 body=${4:-Total: 100 EUR}
    sed 's/$/\r/' >"$file" <<EOF
Date: $(date -R)
From: $from
To: bob@contoso.com
Subject: $subject
Message-ID: <$(basename "$file" .eml).$$@interop.test>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

Hello Bob,

$body

-- 
interop test
EOF
}

# sign IN OUT SELECTOR DOMAIN KEY [dkimsign options]
sign() {
    local in=$1 out=$2 sel=$3 dom=$4 key=$5; shift 5
    dkimsign "$@" "$sel" "$dom" "$TMP/keys/$key.key" <"$in" >"$out" 2>"$out.log" ||
        fail "dkimsign $sel $dom" "$out.log"
    grep -q '^DKIM-Signature:' "$out" || fail "dkimsign produced no DKIM-Signature" "$out" "$out.log"
}

AR_HEAD="^Authentication-Results: $HOST; "
# dkim_d DOMAIN-REGEX: how a DKIM result names the signing domain: header.d= (the documented header
# format, and what the reference system writes), also when the signature carries an i= tag (dkimpy
# always adds one).
dkim_d() { echo "header\\.d=$1"; }

pc tenant add contoso >/dev/null
pc domain add contoso.com --tenant contoso >/dev/null
ok "tenant contoso with contoso.com (reject-direct-send off for now)"

# ---------------------------------------------------------------------------------------------
# SPF at MAIL FROM.
# ---------------------------------------------------------------------------------------------
smtp spf-pass --from alice@tailspin.example --to bob@contoso.com
ID_SPF_PASS=$(expect_queued spf-pass)
expect_ar spf-pass "$ID_SPF_PASS" "$AR_HEAD" \
    ' spf=pass \([^)]*\) smtp\.mailfrom=alice@tailspin\.example;' '; compauth=pass reason=102$'
ok "SPF pass: tailspin.example allows 127.0.0.1 → spf=pass smtp.mailfrom=alice@tailspin.example, compauth=pass reason=102"

smtp spf-fail --local-interface 127.0.0.2 --from alice@tailspin.example --to bob@contoso.com
ID_SPF_FAIL=$(expect_queued spf-fail)
expect_ar spf-fail "$ID_SPF_FAIL" ' spf=fail \([^)]*127\.0\.0\.2[^)]*\) smtp\.mailfrom=alice@tailspin\.example;' \
    ' dmarc=none header\.from=tailspin\.example' '; compauth=fail reason=001$'
lacks_header "$ID_SPF_FAIL" '^X-Spam-Flag:'
ok "SPF fail from 127.0.0.2 (no DMARC): accepted, spf=fail, compauth=fail reason=001, not junked (not our domain)"

# ---------------------------------------------------------------------------------------------
# DKIM: RSA, Ed25519, body changed after signing.
# ---------------------------------------------------------------------------------------------
message "$TMP/msg/dkim.eml" 'Alice <alice@adatum.example>' 'Invoice 1'
sign "$TMP/msg/dkim.eml" "$TMP/msg/dkim-rsa.eml" rsa2048 adatum.example adatum-rsa
smtp dkim-rsa --from alice@adatum.example --to bob@contoso.com --data "@$TMP/msg/dkim-rsa.eml"
ID_DKIM_RSA=$(expect_queued dkim-rsa)
expect_ar dkim-rsa "$ID_DKIM_RSA" ' dkim=pass [^;]*'"$(dkim_d 'adatum\.example')"' header\.s=rsa2048[ ;]' \
    ' spf=pass ' '; compauth=pass reason=102$'
ok "DKIM pass (RSA 2048, key in two TXT strings): dkim=pass header.d=adatum.example header.s=rsa2048"

if [[ -n $ED25519 ]]; then
    sign "$TMP/msg/dkim.eml" "$TMP/msg/dkim-ed.eml" ed adatum.example adatum-ed --signalg ed25519-sha256
    grep -q 'a=ed25519-sha256' "$TMP/msg/dkim-ed.eml" || fail "dkimsign did not make an ed25519 signature" "$TMP/msg/dkim-ed.eml"
    smtp dkim-ed --from alice@adatum.example --to bob@contoso.com --data "@$TMP/msg/dkim-ed.eml"
    ID_DKIM_ED=$(expect_queued dkim-ed)
    expect_ar dkim-ed "$ID_DKIM_ED" ' dkim=pass [^;]*'"$(dkim_d 'adatum\.example')"' header\.s=ed[ ;]'
    ok "DKIM pass (Ed25519, RFC 8463): dkim=pass header.d=adatum.example header.s=ed"
else
    echo "# skipped: this dkimpy cannot make Ed25519 keys (python3-nacl missing)"
fi

sed 's/^Total: 100 EUR\r$/Total: 900 EUR\r/' "$TMP/msg/dkim-rsa.eml" >"$TMP/msg/dkim-tampered.eml"
cmp -s "$TMP/msg/dkim-rsa.eml" "$TMP/msg/dkim-tampered.eml" && fail "the tampering changed nothing"
smtp dkim-tampered --from alice@adatum.example --to bob@contoso.com --data "@$TMP/msg/dkim-tampered.eml"
ID_DKIM_BAD=$(expect_queued dkim-tampered)
expect_ar dkim-tampered "$ID_DKIM_BAD" ' dkim=fail [^;]*'"$(dkim_d 'adatum\.example')"' header\.s=rsa2048[ ;]'
ok "DKIM fail: body changed after signing → dkim=fail header.d=adatum.example (accepted: no DMARC)"

# ---------------------------------------------------------------------------------------------
# DMARC: pass, p=reject, honor_dmarc off, p=quarantine, the tree walk.
# ---------------------------------------------------------------------------------------------
message "$TMP/msg/wg.eml" 'Woodgrove Bank <ceo@woodgrove.example>' 'Statement'
sign "$TMP/msg/wg.eml" "$TMP/msg/wg-signed.eml" s1 woodgrove.example woodgrove
smtp dmarc-pass --local-interface 127.0.0.2 --from ceo@woodgrove.example --to bob@contoso.com \
    --data "@$TMP/msg/wg-signed.eml"
ID_DMARC_PASS=$(expect_queued dmarc-pass)
expect_ar dmarc-pass "$ID_DMARC_PASS" ' dkim=pass [^;]*'"$(dkim_d 'woodgrove\.example')"' header\.s=s1[ ;]' \
    ' spf=fail ' ' dmarc=pass( \([^)]*\))? header\.from=woodgrove\.example policy\.dmarc=reject;' '; compauth=pass reason=100$'
ok "DMARC pass by aligned DKIM despite SPF fail (127.0.0.2): dmarc=pass policy.dmarc=reject, compauth=pass reason=100"

DMARC_REJECT='550 5.7.509 Access denied, sending domain woodgrove.example does not pass DMARC verification and has a DMARC policy of reject'

# RFC 8301: an rsa-sha1 signature is never valid, even when it verifies (mail-auth 0.13.3 passes it;
# signature_rules.rs corrects that), so it cannot carry DMARC either: the same message as above,
# signed with rsa-sha1 by the same key, is refused for woodgrove.example's p=reject.
sign "$TMP/msg/wg.eml" "$TMP/msg/wg-sha1.eml" s1 woodgrove.example woodgrove --signalg rsa-sha1
grep -q 'a=rsa-sha1' "$TMP/msg/wg-sha1.eml" || fail "dkimsign did not make an rsa-sha1 signature" "$TMP/msg/wg-sha1.eml"
smtp dkim-sha1 --local-interface 127.0.0.2 --from ceo@woodgrove.example --to bob@contoso.com \
    --data "@$TMP/msg/wg-sha1.eml"
expect_refused dkim-sha1 data "$DMARC_REJECT"
pc org set --tenant contoso --honor-dmarc off >/dev/null
smtp dkim-sha1-seen --local-interface 127.0.0.2 --from ceo@woodgrove.example --to bob@contoso.com \
    --data "@$TMP/msg/wg-sha1.eml"
ID_SHA1=$(expect_queued dkim-sha1-seen)
expect_ar dkim-sha1-seen "$ID_SHA1" ' dkim=permerror \([^)]*rsa-sha1[^)]*\) [^;]*'"$(dkim_d 'woodgrove\.example')"' header\.s=s1[ ;]' \
    ' dmarc=fail( \([^)]*\))? header\.from=woodgrove\.example'
pc org set --tenant contoso --honor-dmarc on >/dev/null
ok "DKIM a=rsa-sha1 (dkimpy-signed, verifies): dkim=permerror (RFC 8301), no DMARC pass → p=reject refuses it"

# The same signature with the base64 padding of its b= taken away (b= is outside the hash, and
# mail-auth decodes it without padding): still found, still refused.
/usr/bin/python3 - "$TMP/msg/wg-sha1.eml" >"$TMP/msg/wg-sha1-nopad.eml" 2>"$TMP/nopad.log" <<'PY' ||
import sys
m = open(sys.argv[1], "rb").read()
start = m.index(b"\r\n b=")          # the signature's b= (dkimpy folds it onto lines of its own)
end = m.index(b"==\r\n", start)      # its padding, at the end of the header field
sys.stdout.buffer.write(m[:end] + m[end + 2:])
PY
    fail "taking the padding off b=" "$TMP/nopad.log"
smtp dkim-sha1-nopad --local-interface 127.0.0.2 --from ceo@woodgrove.example --to bob@contoso.com \
    --data "@$TMP/msg/wg-sha1-nopad.eml"
expect_refused dkim-sha1-nopad data "$DMARC_REJECT"
ok "the rsa-sha1 signature without its b= padding (still verifies upstream): refused the same"
smtp dmarc-reject --from bounce@tailspin.example --to bob@contoso.com --data "@$TMP/msg/wg.eml"
expect_refused dmarc-reject data "$DMARC_REJECT"
ok "DMARC p=reject failure (unsigned, SPF passes for tailspin.example only) → $DMARC_REJECT"

pc org set --tenant contoso --honor-dmarc off >/dev/null
smtp dmarc-ignored --from bounce@tailspin.example --to bob@contoso.com --data "@$TMP/msg/wg.eml"
ID_DMARC_IGNORED=$(expect_queued dmarc-ignored)
expect_ar dmarc-ignored "$ID_DMARC_IGNORED" ' dmarc=fail( \([^)]*\))? header\.from=woodgrove\.example policy\.dmarc=reject;' \
    '; compauth=fail reason=000$'
pc org set --tenant contoso --honor-dmarc on >/dev/null
ok "honor-dmarc off: the same message is delivered with dmarc=fail, compauth=fail reason=000; honor-dmarc back on"

message "$TMP/msg/sub.eml" 'Alerts <alerts@eu.mail.woodgrove.example>' 'Alert'
smtp dmarc-walk-reject --from bounce@tailspin.example --to bob@contoso.com --data "@$TMP/msg/sub.eml"
expect_refused dmarc-walk-reject data "${DMARC_REJECT/woodgrove.example/eu.mail.woodgrove.example}"
ok "DMARC tree walk: From eu.mail.woodgrove.example (no record of its own), p=reject at woodgrove.example → 550 5.7.509"

message "$TMP/msg/sub2.eml" 'Alerts <alerts@mail.woodgrove.example>' 'Alert 2'
sign "$TMP/msg/sub2.eml" "$TMP/msg/sub2-signed.eml" s1 woodgrove.example woodgrove
smtp dmarc-walk-pass --local-interface 127.0.0.2 --from bounce@tailspin.example --to bob@contoso.com \
    --data "@$TMP/msg/sub2-signed.eml"
ID_WALK_PASS=$(expect_queued dmarc-walk-pass)
expect_ar dmarc-walk-pass "$ID_WALK_PASS" ' dmarc=pass( \([^)]*\))? header\.from=mail\.woodgrove\.example' '; compauth=pass reason=100$'
ok "DMARC tree walk: From mail.woodgrove.example signed d=woodgrove.example → relaxed alignment, dmarc=pass"

message "$TMP/msg/lw.eml" 'Litware News <news@litware.example>' 'Newsletter'
smtp dmarc-quarantine --from bounce@tailspin.example --to bob@contoso.com --data "@$TMP/msg/lw.eml"
ID_QUAR=$(expect_queued dmarc-quarantine)
# Held in the hosted quarantine (stored before the 250), not delivered.
pc quarantine list --tenant contoso --reason dmarc-quarantine --json >"$TMP/quarantine.json"
QID=$(jq -r --arg id "$ID_QUAR" 'first(.[] | select(.trace_id == $id)) | .id' "$TMP/quarantine.json")
[[ -n $QID && $QID != null ]] ||
    fail "DMARC quarantine: no entry with reason dmarc-quarantine for trace $ID_QUAR" "$TMP/quarantine.json"
pc quarantine show "$QID" --tenant contoso >"$TMP/quarantine-show.txt"
tr -d '\r' <"$TMP/quarantine-show.txt" | tr '\n\t' '  ' |
    grep -Eq "Authentication-Results: $HOST; .* dmarc=fail( \([^)]*\))? header\.from=litware\.example policy\.dmarc=quarantine;.* compauth=fail reason=000" ||
    fail "quarantine show $QID: expected its Authentication-Results with dmarc=fail policy.dmarc=quarantine, compauth=fail reason=000" \
        "$TMP/quarantine-show.txt"
if grep -rqF -- "id $ID_QUAR" "$BOB" 2>/dev/null; then fail "DMARC quarantine: $ID_QUAR was delivered to the mailbox too"; fi
ok "DMARC p=quarantine failure → 250, held in the quarantine (reason dmarc-quarantine, compauth=fail reason=000), not delivered"

# ---------------------------------------------------------------------------------------------
# Own-domain spoof in the From: header only (P1 elsewhere): junked, not refused.
# ---------------------------------------------------------------------------------------------
message "$TMP/msg/spoof.eml" 'CEO <ceo@contoso.com>' 'Urgent wire transfer'
smtp spoof --local-interface 127.0.0.7 --from x@unregistered.example --to bob@contoso.com \
    --data "@$TMP/msg/spoof.eml" \
    --add-header 'X-Portcullis-Spam: forged-by-sender'
ID_SPOOF=$(expect_queued spoof)
expect_ar spoof "$ID_SPOOF" ' spf=none ' ' dmarc=fail( \([^)]*\))? header\.from=contoso\.com policy\.dmarc=none;' \
    '; compauth=fail reason=601$'
has_header "$ID_SPOOF" 'X-Spam-Flag: YES'
has_header "$ID_SPOOF" 'X-Portcullis-SCL: 5'
lacks_header "$ID_SPOOF" '^X-Portcullis-Spam:'
ok "own-domain spoof (From ceo@contoso.com, P1 x@unregistered.example): compauth=fail reason=601, X-Spam-Flag: YES, X-Portcullis-SCL: 5"

# ---------------------------------------------------------------------------------------------
# Reject direct send and its exemptions: a forwarded message ARC-sealed by forwarder.example, and a
# SaaS sender signing with a key contoso.com delegated to it.
# ---------------------------------------------------------------------------------------------
DS_REPLY='550 5.7.68 TenantInboundAttribution; Direct Send not allowed for this organization from unauthorized sources'
pc org set --tenant contoso --reject-direct-send on >/dev/null

# The original, signed by contoso.com's own server; the list adds a footer (breaking that signature),
# records what it saw in its own Authentication-Results and seals (ARC i=1).
message "$TMP/msg/orig.eml" 'CEO <ceo@contoso.com>' 'Board minutes'
sign "$TMP/msg/orig.eml" "$TMP/msg/orig-signed.eml" s1 contoso.com contoso
{
    printf 'Authentication-Results: lists.forwarder.example; dkim=pass header.d=contoso.com header.s=s1;\r\n'
    printf '\tspf=pass smtp.mailfrom=ceo@contoso.com; dmarc=pass header.from=contoso.com\r\n'
    cat "$TMP/msg/orig-signed.eml"
    printf '_______________________________________________\r\nboard mailing list\r\n'
} >"$TMP/msg/fwd-pre.eml"
arcsign arc forwarder.example "$TMP/keys/forwarder.key" lists.forwarder.example \
    <"$TMP/msg/fwd-pre.eml" >"$TMP/msg/fwd.eml" 2>"$TMP/arcsign.log" || fail "arcsign" "$TMP/arcsign.log"
grep -q '^ARC-Seal: i=1; .*cv=none' "$TMP/msg/fwd.eml" && grep -q '^ARC-Message-Signature: i=1' "$TMP/msg/fwd.eml" &&
    grep -q '^ARC-Authentication-Results: i=1; lists.forwarder.example' "$TMP/msg/fwd.eml" ||
    fail "arcsign did not add an ARC set" "$TMP/msg/fwd.eml" "$TMP/arcsign.log"
sed 's/^board mailing list\r$/board mailing list (edited in transit)\r/' "$TMP/msg/fwd.eml" >"$TMP/msg/fwd-tampered.eml"

message "$TMP/msg/saas.eml" 'Contoso Billing <billing@contoso.com>' 'Your invoice'
sign "$TMP/msg/saas.eml" "$TMP/msg/saas-signed.eml" saas contoso.com contoso-saas

fwd() { smtp "$1" --local-interface 127.0.0.5 --from ceo@contoso.com --to bob@contoso.com --data "@$TMP/msg/${2:-fwd}.eml"; }
saas() { smtp "$1" --local-interface 127.0.0.6 --from billing@contoso.com --to bob@contoso.com --data "@$TMP/msg/saas-signed.eml"; }

fwd fwd-no-exemption
expect_refused fwd-no-exemption rcpt "$DS_REPLY"
saas saas-no-exemption
expect_refused saas-no-exemption rcpt "$DS_REPLY"
ok "reject-direct-send on, no exemptions: forwarded (127.0.0.5) and SaaS (127.0.0.6) mail refused at RCPT with 5.7.68"

pc org set --tenant contoso --arc-trusted-sealer other.example >/dev/null
fwd fwd-other-sealer
expect_refused fwd-other-sealer data "$DS_REPLY"
ok "trusted sealer other.example only: the decision moves to end of DATA, forwarder.example's seal does not exempt → 5.7.68"

pc org set --tenant contoso --arc-trusted-sealer forwarder.example >/dev/null
fwd fwd-trusted
ID_FWD=$(expect_queued fwd-trusted)
expect_ar fwd-trusted "$ID_FWD" ' spf=fail ' ' dkim=fail [^;]*'"$(dkim_d 'contoso\.com')"' header\.s=s1[ ;]' ' arc=pass' \
    ' dmarc=fail( \([^)]*\))? header\.from=contoso\.com' '; compauth=pass reason=130$'
lacks_header "$ID_FWD" '^X-Spam-Flag:'
ok "--arc-trusted-sealer forwarder.example: forwarded own-domain mail accepted, arc=pass, compauth=pass reason=130, not junked"

fwd fwd-tampered fwd-tampered
expect_refused fwd-tampered data "$DS_REPLY"
ok "forwarded message changed after the seal (ARC fails): refused 5.7.68 after DATA"

# The same forwarding sealed with rsa-sha1 (dkimpy's arc_sign; RFC 8301 forbids it for ARC too,
# mail-auth 0.13.3 accepts it): the chain fails, so the trusted sealer exempts nothing. Debian's
# python3 (python3-dkim), not a python3 earlier on the PATH.
/usr/bin/python3 - "$TMP/msg/fwd-pre.eml" "$TMP/keys/forwarder.key" >"$TMP/msg/fwd-sha1.eml" 2>"$TMP/arcsign-sha1.log" <<'PY' ||
import sys, dkim
msg = open(sys.argv[1], "rb").read()
key = open(sys.argv[2], "rb").read()
# dkim.arc_sign always uses rsa-sha256; the ARC signer itself takes the algorithm.
headers = dkim.ARC(msg, signature_algorithm=b"rsa-sha1").sign(
    b"arc", b"forwarder.example", key, b"lists.forwarder.example")
sys.stdout.buffer.write(b"".join(headers) + msg)
PY
    fail "arc_sign with rsa-sha1" "$TMP/arcsign-sha1.log"
grep -q '^ARC-Seal: .*a=rsa-sha1' "$TMP/msg/fwd-sha1.eml" || fail "no rsa-sha1 ARC-Seal" "$TMP/msg/fwd-sha1.eml" "$TMP/arcsign-sha1.log"
fwd fwd-sha1 fwd-sha1
expect_refused fwd-sha1 data "$DS_REPLY"
ok "forwarded message ARC-sealed with rsa-sha1 by the trusted sealer: the chain fails (RFC 8301), refused 5.7.68 after DATA"

saas saas-not-allowed
expect_refused saas-not-allowed data "$DS_REPLY"
pc org set --tenant contoso --direct-send-allow-dkim-aligned on >/dev/null
saas saas-allowed
ID_SAAS=$(expect_queued saas-allowed)
expect_ar saas-allowed "$ID_SAAS" ' dkim=pass [^;]*'"$(dkim_d 'contoso\.com')"' header\.s=saas[ ;]' ' spf=fail ' \
    ' dmarc=pass( \([^)]*\))? header\.from=contoso\.com' '; compauth=pass reason=100$'
ok "DKIM-aligned SaaS mail: 5.7.68 after DATA until --direct-send-allow-dkim-aligned on, then accepted (dkim=pass d=contoso.com)"

# ---------------------------------------------------------------------------------------------
# The trace's auth object.
# ---------------------------------------------------------------------------------------------
sleep 0.3 # the trace writer batches (≤50 ms)
pc trace --tenant contoso --json >"$TMP/trace.json"
jq -e 'type == "array"' "$TMP/trace.json" >/dev/null || fail "trace --json is not a JSON array" "$TMP/trace.json"
# jq_check DESCRIPTION FILTER [jq args...]
jq_check() {
    local what=$1 filter=$2; shift 2
    jq -e "$@" "$filter" "$TMP/trace.json" >/dev/null || fail "trace: $what (jq: $filter)" "$TMP/trace.json"
    ok "trace: $what"
}
rec='first(.[] | select(.trace_id == $id))'
jq_check "DKIM RSA message: auth {spf pass, dkim pass, dmarc none, arc none, compauth pass} and an AUTH event" \
    "$rec"' | (.auth | {spf, dkim, dmarc, arc, compauth}) == {spf: "pass", dkim: "pass", dmarc: "none", arc: "none", compauth: "pass"}
        and ([.events[] | select(.event == "AUTH")] | length >= 1)' --arg id "$ID_DKIM_RSA"
jq_check "tampered message: auth.dkim fail" "$rec"' | .auth.dkim == "fail"' --arg id "$ID_DKIM_BAD"
jq_check "SPF-fail message: auth.spf fail, compauth fail" \
    "$rec"' | .auth.spf == "fail" and .auth.compauth == "fail"' --arg id "$ID_SPF_FAIL"
jq_check "DMARC reject: 4 rejected records (woodgrove.example unsigned, rsa-sha1-signed twice, tree walk) with dmarc fail, compauth fail, 5.7.509" \
    '[.[] | select(.status == "rejected" and .auth.dmarc == "fail"
        and .auth.compauth == "fail" and (.recipients[0].reply | startswith("550 5.7.509 ")))] | length == 4
     and any(.[]; .recipients[0].reply == $r)' --arg r "$DMARC_REJECT"
jq_check "forwarded message: auth.arc pass, compauth pass, an event naming the exemption" \
    "$rec"' | .auth.arc == "pass" and .auth.compauth == "pass" and .direct_send == true
        and ([.events[] | select(.detail | test("trusted ARC sealer forwarder\\.example"))] | length >= 1)' \
    --arg id "$ID_FWD"
jq_check "forwarded messages refused after DATA: one with arc pass (untrusted sealer), two with arc fail (changed after the seal; sealed with rsa-sha1)" \
    '[.[] | select(.client_ip == "127.0.0.5" and .status == "rejected" and .auth.arc != null) | .auth.arc] | sort == ["fail", "fail", "pass"]'
jq_check "SaaS message: auth.dkim pass, auth.dmarc pass" \
    "$rec"' | .auth.dkim == "pass" and .auth.dmarc == "pass"' --arg id "$ID_SAAS"
jq_check "spoof: compauth fail; quarantine: status quarantined, dmarc fail" \
    '(first(.[] | select(.trace_id == $s)) | .auth.compauth == "fail")
        and (first(.[] | select(.trace_id == $q)) | .auth.dmarc == "fail" and .status == "quarantined")' \
    --arg s "$ID_SPOOF" --arg q "$ID_QUAR"

# ---------------------------------------------------------------------------------------------
# DNS failures are temporary: a name server that never answers (knot replaced by a black hole).
# ---------------------------------------------------------------------------------------------
# Signed with a selector never looked up (so not cached); tailspin.example's SPF record is cached.
message "$TMP/msg/unseen.eml" 'Alice <alice@tailspin.example>' 'Late'
sign "$TMP/msg/unseen.eml" "$TMP/msg/unseen-signed.eml" unseen tailspin.example unpublished
stop_knot
python3 - "$KNOT_PORT" >"$TMP/hole.log" 2>&1 <<'EOF' &
# Accepts DNS queries on UDP and TCP and never answers (bounded: exits after 120 s).
import socket, sys, time
port = int(sys.argv[1])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", port))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(("127.0.0.1", port)); t.listen(64)
print("ready", flush=True)
time.sleep(120)
EOF
HOLE_PID=$!
for _ in $(seq 50); do grep -q ready "$TMP/hole.log" && break; sleep 0.1; done
grep -q ready "$TMP/hole.log" || fail "black-hole DNS did not start" "$TMP/hole.log"

t0=$(date +%s)
smtp dns-spf --from alice@never-looked-up.example --to bob@contoso.com
expect_refused dns-spf rcpt '451 4.7.24 SPF validation error (temporary DNS failure), please try again later'
ok "DNS time-out for SPF: 451 4.7.24 at RCPT ($(($(date +%s) - t0)) s)"

t0=$(date +%s)
smtp dns-dkim --from alice@tailspin.example --to bob@contoso.com --data "@$TMP/msg/unseen-signed.eml"
expect_refused dns-dkim data '451 4.7.0 Temporary failure of email authentication (DNS), please try again later'
ok "DNS time-out for DKIM/DMARC (SPF answer cached): 451 4.7.0 after DATA ($(($(date +%s) - t0)) s)"

kill -TERM "$SERVER_PID"
for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$SERVER_PID" 2>/dev/null; then fail "server still running 10 s after SIGTERM"; fi
rc=0; wait "$SERVER_PID" || rc=$?
SERVER_PID=
[[ $rc == 0 ]] || fail "server exited with status $rc after SIGTERM" "$TMP/server.log"
ok "SIGTERM: server exited 0"

echo "# all $PASSED checks passed in $(($(date +%s) - START)) s"
