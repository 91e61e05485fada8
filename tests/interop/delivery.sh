#!/usr/bin/env bash
# Delivery to real third-party downstream mailbox servers: drives the `portcullis` binary with swaks
# and checks what arrives at the other end and what the message trace says about it.
#
#   1. Postfix's smtp-sink as an SMTP and as an LMTP downstream (tenant route and domain route, one
#      transaction per route); a sink refusing every RCPT with 5xx (failed), one refusing with 4xx
#      (deferred, retried), one without STARTTLS behind smtp+tls-required (deferred).
#   2. Dovecot's LMTP server (its own config, sockets and mail in the temp dir) over a unix socket
#      (lmtp+unix://) and over TCP (lmtp://): the message lands in the user's Maildir/new.
#   3. A downstream that is down at first and comes up later: deferred, then delivered on a retry
#      (`[delivery] first_retry = "1s"`, `max_retry = "2s"`).
#   4. LMTP with two recipients in one transaction (smtp-sink and dovecot): one reply per recipient.
#
# Usage: tests/interop/delivery.sh            (binary: target/debug/portcullis, or $PORTCULLIS_BIN)
# Needs: swaks, jq, postfix (smtp-sink; the postfix daemon itself is not used), dovecot-core +
# dovecot-lmtpd (dovecot is started with a private config; the system's instance is not used).
# Email authentication is switched off (`[auth] enabled = false`), so no DNS server is needed.
# Runs as root on CI (smtp-sink gets `-u root`; dovecot delivers as `nobody`, since it refuses
# uid 0 for mail). Uses only 127.0.0.x addresses.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/interop/lib.sh
source "$ROOT/tests/interop/lib.sh"
BIN=${PORTCULLIS_BIN:-$ROOT/target/debug/portcullis}
[[ -x $BIN ]] || { echo "FATAL: $BIN not found; run 'cargo build -p portcullis' first" >&2; exit 1; }
# smtp-sink and dovecot live in /usr/sbin, which a non-login shell may not have on its PATH.
export PATH="$PATH:/usr/sbin:/sbin"
for tool in swaks jq smtp-sink dovecot; do
    command -v "$tool" >/dev/null || { echo "FATAL: $tool is not installed" >&2; exit 1; }
done

TMP=$(mktemp -d)
SERVER_PID=
DOVECOT_PID=
SINK_PIDS=()

# stop_pid PID: SIGTERM, up to 5 s, then SIGKILL.
stop_pid() {
    local pid=$1 _i
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    local pid
    for pid in "${SINK_PIDS[@]}"; do stop_pid "$pid"; done
    stop_pid "$DOVECOT_PID"
    [[ -n ${KEEP_TMP:-} ]] && echo "# kept $TMP" >&2 || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

FAIL_LOGS=("$TMP/*.sink.log" "$TMP/dovecot/dovecot.log" "$TMP/server.log")

# listening ADDR PORT: something accepts TCP connections there.
listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# free_port ADDR: a random port on ADDR where nothing listens.
free_port() {
    local p _i
    for _i in $(seq 50); do
        p=$((20000 + RANDOM % 40000))
        listening "$1" "$p" || { echo "$p"; return 0; }
    done
    echo "FATAL: no free port on $1" >&2
    return 1
}

# wait_listening ADDR PORT PID WHAT: until ADDR:PORT accepts connections (10 s), PID staying alive.
wait_listening() {
    local addr=$1 port=$2 pid=$3 what=$4 _i
    for _i in $(seq 100); do
        listening "$addr" "$port" && return 0
        kill -0 "$pid" 2>/dev/null || fail "$what exited during start-up"
        sleep 0.1
    done
    fail "$what does not listen on $addr:$port after 10 s"
}

# start_sink NAME ADDR PORT [SMTP-SINK OPTIONS...]: smtp-sink on ADDR:PORT, every transaction appended
# to $TMP/NAME.dump, its output in $TMP/NAME.sink.log.
start_sink() {
    local name=$1 addr=$2 port=$3; shift 3
    local user=()
    ((EUID == 0)) && user=(-u root)   # smtp-sink refuses to run as root without -u
    smtp-sink "${user[@]}" -D "$TMP/$name.dump" "$@" "$addr:$port" 16 >"$TMP/$name.sink.log" 2>&1 &
    SINK_PIDS+=($!)
    wait_listening "$addr" "$port" $! "smtp-sink $name"
}

# ---------------------------------------------------------------------------------------------
# Downstreams: smtp-sink (SMTP, LMTP, refusing 5xx, refusing 4xx) and dovecot LMTP.
# ---------------------------------------------------------------------------------------------
SMTP_ADDR=127.0.0.21 LMTP_ADDR=127.0.0.22 REFUSE_ADDR=127.0.0.23 TEMPFAIL_ADDR=127.0.0.24
LATE_ADDR=127.0.0.25 DOVECOT_ADDR=127.0.0.26
SMTP_SINK_PORT=$(free_port $SMTP_ADDR)
LMTP_SINK_PORT=$(free_port $LMTP_ADDR)
REFUSE_PORT=$(free_port $REFUSE_ADDR)
TEMPFAIL_PORT=$(free_port $TEMPFAIL_ADDR)
LATE_PORT=$(free_port $LATE_ADDR)
DOVECOT_PORT=$(free_port $DOVECOT_ADDR)

REFUSE_REPLY='550 5.1.1 Mailbox unavailable (smtp-sink refuses every RCPT)'
TEMPFAIL_REPLY='452 4.2.2 Mailbox full, try again later (smtp-sink)'

start_sink smtp $SMTP_ADDR "$SMTP_SINK_PORT"
start_sink lmtp $LMTP_ADDR "$LMTP_SINK_PORT" -L
start_sink refuse $REFUSE_ADDR "$REFUSE_PORT" -f RCPT -B "$REFUSE_REPLY"
start_sink tempfail $TEMPFAIL_ADDR "$TEMPFAIL_PORT" -r RCPT -b "$TEMPFAIL_REPLY"
ok "smtp-sink: SMTP on $SMTP_ADDR:$SMTP_SINK_PORT, LMTP on $LMTP_ADDR:$LMTP_SINK_PORT, 5xx-refusing on $REFUSE_ADDR:$REFUSE_PORT, 4xx-refusing on $TEMPFAIL_ADDR:$TEMPFAIL_PORT"

# Dovecot: LMTP only, static users, everything (sockets, state, log, mail) under $TMP/dovecot.
# Dovecot never delivers mail as uid 0: as root, mail is written as nobody, which needs to traverse
# $TMP (0711: no listing) and own the mail directory.
DOVECOT_VERSION=$(dovecot --version 2>/dev/null | awk '{ print $1 }')
case $DOVECOT_VERSION in
    2.3.*) ;;
    *) fail "dovecot $DOVECOT_VERSION: this script writes a dovecot 2.3 configuration (Debian 12)" ;;
esac
DV=$TMP/dovecot
mkdir -p "$DV/run" "$DV/state" "$DV/mail"
if ((EUID == 0)); then
    MAIL_UID=$(id -u nobody) MAIL_GID=$(id -g nobody)
    chmod 0711 "$TMP" "$DV"
    chown "$MAIL_UID:$MAIL_GID" "$DV/mail"
    DOVECOT_USERS=
else
    MAIL_UID=$(id -u) MAIL_GID=$(id -g)
    DOVECOT_USERS="default_internal_user = $(id -un)
default_login_user = $(id -un)
default_internal_group = $(id -gn)"
fi
LMTP_SOCKET=$DV/run/lmtp
cat >"$DV/dovecot.conf" <<EOF
# Minimal self-contained dovecot $DOVECOT_VERSION: LMTP only, no TLS, static users.
protocols = lmtp
listen = $DOVECOT_ADDR
base_dir = $DV/run
state_dir = $DV/state
log_path = $DV/dovecot.log
info_log_path = $DV/dovecot.log
ssl = no
first_valid_uid = 1
$DOVECOT_USERS
mail_location = maildir:~/Maildir
passdb {
  driver = static
  args = nopassword=y
}
userdb {
  driver = static
  args = uid=$MAIL_UID gid=$MAIL_GID home=$DV/mail/%u
}
service lmtp {
  unix_listener lmtp {
    mode = 0666
  }
  inet_listener lmtp {
    address = $DOVECOT_ADDR
    port = $DOVECOT_PORT
  }
}
EOF
dovecot -F -c "$DV/dovecot.conf" >"$DV/dovecot.out" 2>&1 &
DOVECOT_PID=$!
wait_listening $DOVECOT_ADDR "$DOVECOT_PORT" "$DOVECOT_PID" "dovecot"
for _ in $(seq 50); do [[ -S $LMTP_SOCKET ]] && break; sleep 0.1; done
[[ -S $LMTP_SOCKET ]] || fail "dovecot: no LMTP socket at $LMTP_SOCKET" "$DV/dovecot.out"
ok "dovecot $DOVECOT_VERSION: LMTP on $LMTP_SOCKET and $DOVECOT_ADDR:$DOVECOT_PORT"

# ---------------------------------------------------------------------------------------------
# The gateway: ephemeral ports, no email authentication, fast retries.
# ---------------------------------------------------------------------------------------------
DATA=$TMP/data
cat >"$TMP/portcullis.toml" <<EOF
[auth]
enabled = false

[delivery]
first_retry = "1s"
max_retry = "2s"
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

# smtp NAME ARGS...: swaks against the gateway; the transcript goes to $TMP/NAME.swaks. Prints the
# trace id from "250 2.6.0 Queued as ID"; anything else fails.
smtp() {
    local name=$1; shift
    local rc=0 id
    swaks --server "127.0.0.1:$SMTP_PORT" --timeout 20 "$@" >"$TMP/$name.swaks" 2>&1 || rc=$?
    [[ $rc == 0 ]] || fail "$name: swaks exited $rc" "$TMP/$name.swaks"
    id=$(sed -nE 's/^<- +250 2\.6\.0 Queued as ([A-Za-z0-9]+)\r?$/\1/p' "$TMP/$name.swaks")
    [[ -n $id ]] || fail "$name: expected the reply '250 2.6.0 Queued as <ID>'" "$TMP/$name.swaks"
    echo "$id"
}

# wait_status ID TENANT STATUS SECONDS: until `trace show` says STATUS; the record is left in
# $TMP/ID.json.
wait_status() {
    local id=$1 tenant=$2 want=$3 secs=$4 status= _i
    for _i in $(seq $((secs * 5))); do
        "$BIN" trace show "$id" --tenant "$tenant" --json >"$TMP/$id.json" 2>&1 || true
        status=$(jq -r '.status' "$TMP/$id.json" 2>/dev/null || true)
        [[ $status == "$want" ]] && return 0
        sleep 0.2
    done
    fail "trace status of $id is '$status', expected $want within $secs s" "$TMP/$id.json"
}

# trace_check ID DESCRIPTION FILTER [jq args...]: FILTER on the record in $TMP/ID.json must be true.
trace_check() {
    local id=$1 what=$2 filter=$3; shift 3
    jq -e "$@" "$filter" "$TMP/$id.json" >/dev/null || fail "trace $id: $what (jq: $filter)" "$TMP/$id.json"
    ok "trace $id: $what"
}

# dump_record NAME SUBJECT: the transactions in smtp-sink NAME's dump whose Subject is SUBJECT (each
# dumped transaction starts with the sink's X-Client-Addr line); waits up to 5 s for the first.
dump_record() {
    local name=$1 subject=$2 out _i
    for _i in $(seq 50); do
        out=$(tr -d '\r' 2>/dev/null <"$TMP/$name.dump" | awk -v s="Subject: $subject" '
            /^X-Client-Addr: / { if (found) printf "%s", rec; rec = ""; found = 0 }
            { rec = rec $0 "\n"; if ($0 == s) found = 1 }
            END { if (found) printf "%s", rec }')
        [[ -n $out ]] && { printf '%s' "$out"; return 0; }
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------------------------------------
# Tenants, domains and routes.
#   contoso (connector for 127.0.0.1), tenant route: the SMTP sink
#     contoso.com   the tenant's route
#     contoso.net   domain route: the LMTP sink
#     contoso.org   domain route: the sink refusing every RCPT with 5xx
#     contoso.info  domain route: the sink refusing every RCPT with 4xx
#     contoso.biz   domain route: smtp+tls-required:// to the SMTP sink (which has no STARTTLS)
#     contoso.dev   domain route: a port where nothing listens yet
#   fabrikam (anonymous senders), tenant route: dovecot over the unix socket
#     fabrikam.com  the tenant's route
#     fabrikam.net  domain route: dovecot over TCP
# ---------------------------------------------------------------------------------------------
SMTP_ROUTE=smtp://$SMTP_ADDR:$SMTP_SINK_PORT
LMTP_ROUTE=lmtp://$LMTP_ADDR:$LMTP_SINK_PORT
REFUSE_ROUTE=smtp://$REFUSE_ADDR:$REFUSE_PORT
TEMPFAIL_ROUTE=smtp://$TEMPFAIL_ADDR:$TEMPFAIL_PORT
TLSREQ_ROUTE=smtp+tls-required://$SMTP_ADDR:$SMTP_SINK_PORT
LATE_ROUTE=smtp://$LATE_ADDR:$LATE_PORT
DOVECOT_UNIX_ROUTE=lmtp+unix://$LMTP_SOCKET
DOVECOT_TCP_ROUTE=lmtp://$DOVECOT_ADDR:$DOVECOT_PORT

pc tenant add contoso >/dev/null
for d in contoso.com contoso.net contoso.org contoso.info contoso.biz contoso.dev; do
    pc domain add $d --tenant contoso >/dev/null
done
pc connector add on-prem --tenant contoso --type on-premises --sender-ip 127.0.0.1/32 >/dev/null
pc tenant set contoso --route "$SMTP_ROUTE" >/dev/null
pc domain set contoso.net --tenant contoso --route "$LMTP_ROUTE" >/dev/null
pc domain set contoso.org --tenant contoso --route "$REFUSE_ROUTE" >/dev/null
pc domain set contoso.info --tenant contoso --route "$TEMPFAIL_ROUTE" >/dev/null
pc domain set contoso.biz --tenant contoso --route "$TLSREQ_ROUTE" >/dev/null
pc domain set contoso.dev --tenant contoso --route "$LATE_ROUTE" >/dev/null
pc tenant add fabrikam >/dev/null
pc domain add fabrikam.com --tenant fabrikam >/dev/null
pc domain add fabrikam.net --tenant fabrikam >/dev/null
pc tenant set fabrikam --route "$DOVECOT_UNIX_ROUTE" >/dev/null
pc domain set fabrikam.net --tenant fabrikam --route "$DOVECOT_TCP_ROUTE" >/dev/null
ok "tenants contoso and fabrikam with their tenant and domain routes"

CONTOSO_ATTRIBUTION='X-Portcullis-Attribution: tenant=contoso; auth-as=on-premises; connector="on-prem"'

# ---------------------------------------------------------------------------------------------
# 1. smtp-sink over SMTP and LMTP: one message, three recipients, two routes.
# ---------------------------------------------------------------------------------------------
SUBJ_SINK="Portcullis delivery: smtp-sink $$"
ID=$(smtp sink --from ceo@contoso.com --to bob@contoso.com,carol@contoso.com,dave@contoso.net \
    --h-Subject "$SUBJ_SINK")
ok "message to bob@contoso.com, carol@contoso.com (SMTP sink) and dave@contoso.net (LMTP sink) queued as $ID"

REC=$(dump_record smtp "$SUBJ_SINK") || fail "SMTP sink: no message with Subject '$SUBJ_SINK'" "$TMP/smtp.dump"
printf '%s' "$REC" >"$TMP/sink-smtp.rec"
[[ $(grep -c '^X-Client-Addr: ' "$TMP/sink-smtp.rec") == 1 ]] ||
    fail "SMTP sink: expected exactly one transaction for the message" "$TMP/sink-smtp.rec"
grep -qx 'X-Client-Proto: ESMTP' "$TMP/sink-smtp.rec" || fail "SMTP sink: not an ESMTP transaction" "$TMP/sink-smtp.rec"
[[ $(grep '^X-Rcpt-Args: ' "$TMP/sink-smtp.rec" | sort | tr '\n' ' ') == 'X-Rcpt-Args: <bob@contoso.com> X-Rcpt-Args: <carol@contoso.com> ' ]] ||
    fail "SMTP sink: expected RCPT TO bob@contoso.com and carol@contoso.com, nothing else" "$TMP/sink-smtp.rec"
grep -q '^X-Mail-Args: <ceo@contoso.com>' "$TMP/sink-smtp.rec" ||
    fail "SMTP sink: MAIL FROM is not <ceo@contoso.com>" "$TMP/sink-smtp.rec"
grep -qxF "$CONTOSO_ATTRIBUTION" "$TMP/sink-smtp.rec" ||
    fail "SMTP sink: the message lacks '$CONTOSO_ATTRIBUTION'" "$TMP/sink-smtp.rec"
ok "SMTP sink: one ESMTP transaction from <ceo@contoso.com> to bob and carol, Subject and X-Portcullis-Attribution intact"

REC=$(dump_record lmtp "$SUBJ_SINK") || fail "LMTP sink: no message with Subject '$SUBJ_SINK'" "$TMP/lmtp.dump"
printf '%s' "$REC" >"$TMP/sink-lmtp.rec"
{ [[ $(grep -c '^X-Client-Addr: ' "$TMP/sink-lmtp.rec") == 1 ]] &&
    grep -qx 'X-Client-Proto: LMTP' "$TMP/sink-lmtp.rec" &&
    [[ $(grep '^X-Rcpt-Args: ' "$TMP/sink-lmtp.rec") == 'X-Rcpt-Args: <dave@contoso.net>' ]] &&
    grep -qxF "$CONTOSO_ATTRIBUTION" "$TMP/sink-lmtp.rec"; } ||
    fail "LMTP sink: expected one LMTP transaction to dave@contoso.net with '$CONTOSO_ATTRIBUTION'" "$TMP/sink-lmtp.rec"
ok "LMTP sink: one LMTP transaction to dave@contoso.net (the domain's route), X-Portcullis-Attribution intact"

wait_status "$ID" contoso delivered 10
trace_check "$ID" 'status "delivered", all 3 recipients delivered with a 250 reply' \
    '.status == "delivered" and (.recipients | length == 3)
     and all(.recipients[]; .status == "delivered" and (.reply | startswith("250")))'
trace_check "$ID" "DELIVER event naming $SMTP_ROUTE (2 recipients)" \
    '[.events[] | select(.event == "DELIVER" and (.detail | startswith($r + ": 2 recipient")))] | length == 1' \
    --arg r "$SMTP_ROUTE"
trace_check "$ID" "DELIVER event naming $LMTP_ROUTE (1 recipient)" \
    '[.events[] | select(.event == "DELIVER" and (.detail | startswith($r + ": 1 recipient")))] | length == 1' \
    --arg r "$LMTP_ROUTE"
trace_check "$ID" "no DEFER or FAIL event" '[.events[] | select(.event == "DEFER" or .event == "FAIL")] | length == 0'

# A sink refusing every RCPT with 5xx: failed, the sink's reply recorded. The null sender, so the
# outcome does not depend on a delivery status notification going anywhere.
SUBJ_REFUSE="Portcullis delivery: refused $$"
ID=$(smtp refuse --from '<>' --to gina@contoso.org --h-Subject "$SUBJ_REFUSE")
wait_status "$ID" contoso failed 10
trace_check "$ID" "5xx per RCPT: status \"failed\", the recipient failed with the sink's reply" \
    '.status == "failed" and (.recipients | length == 1) and .recipients[0].address == "gina@contoso.org"
     and .recipients[0].status == "failed" and (.recipients[0].reply | contains($reply))' --arg reply "$REFUSE_REPLY"
trace_check "$ID" "FAIL event naming $REFUSE_ROUTE and the reply, no DELIVER event" \
    '([.events[] | select(.event == "FAIL" and (.detail | startswith($r)) and (.detail | contains($reply)))] | length == 1)
     and ([.events[] | select(.event == "DELIVER")] | length == 0)' --arg r "$REFUSE_ROUTE" --arg reply "$REFUSE_REPLY"
if dump_record refuse "$SUBJ_REFUSE" >/dev/null; then fail "refusing sink: the message was dumped" "$TMP/refuse.dump"; fi
ok "refusing sink received no message"

# A sink refusing every RCPT with 4xx: deferred, the reply recorded, retried.
ID_TEMPFAIL=$(smtp tempfail --from '<>' --to hank@contoso.info --h-Subject "Portcullis delivery: 4xx $$")
wait_status "$ID_TEMPFAIL" contoso deferred 10
trace_check "$ID_TEMPFAIL" "4xx per RCPT: status \"deferred\", the recipient still pending with the sink's reply" \
    '.status == "deferred" and .recipients[0].status != "failed" and .recipients[0].status != "delivered"
     and (.recipients[0].reply | contains($reply))
     and ([.events[] | select(.event == "DEFER" and (.detail | contains($reply)))] | length >= 1)' \
    --arg reply "$TEMPFAIL_REPLY"

# smtp+tls-required to a server that offers no STARTTLS: never sent in clear text, deferred.
SUBJ_TLSREQ="Portcullis delivery: tls-required $$"
ID=$(smtp tlsreq --from '<>' --to ivan@contoso.biz --h-Subject "$SUBJ_TLSREQ")
wait_status "$ID" contoso deferred 10
trace_check "$ID" "smtp+tls-required without STARTTLS: status \"deferred\", DEFER event naming the route" \
    '.status == "deferred" and .recipients[0].status != "delivered"
     and ([.events[] | select(.event == "DEFER" and (.detail | contains($r)))] | length >= 1)' --arg r "$TLSREQ_ROUTE"
if dump_record smtp "$SUBJ_TLSREQ" >/dev/null; then fail "tls-required: the message reached the sink without TLS" "$TMP/smtp.dump"; fi
ok "tls-required: the message did not reach the sink in clear text"

# ---------------------------------------------------------------------------------------------
# 2. Dovecot LMTP over the unix socket (tenant route) and over TCP (domain route).
# ---------------------------------------------------------------------------------------------
# dovecot_mail USER SUBJECT: the file in USER's Maildir/new with that Subject (waits up to 10 s).
dovecot_mail() {
    local dir=$DV/mail/$1/Maildir/new f _i
    for _i in $(seq 100); do
        if [[ -d $dir ]]; then
            f=$(grep -lxF "Subject: $2" "$dir"/* 2>/dev/null | head -n 1 || true)
            [[ -n $f ]] && { echo "$f"; return 0; }
        fi
        sleep 0.1
    done
    return 1
}

for via in unix tcp; do
    if [[ $via == unix ]]; then user=judy@fabrikam.com route=$DOVECOT_UNIX_ROUTE
    else user=kim@fabrikam.net route=$DOVECOT_TCP_ROUTE; fi
    subject="Portcullis delivery: dovecot $via $$"
    ID=$(smtp "dovecot-$via" --local-interface 127.0.0.2 --from alice@sender.example --to "$user" --h-Subject "$subject")
    f=$(dovecot_mail "$user" "$subject") ||
        fail "dovecot ($via): no message in $DV/mail/$user/Maildir/new" <(ls -laR "$DV/mail" 2>&1) "$DV/dovecot.log"
    tr -d '\r' <"$f" >"$TMP/dovecot-$via.eml"
    grep -qx "Delivered-To: $user" "$TMP/dovecot-$via.eml" ||
        fail "dovecot ($via): the Maildir file lacks dovecot's 'Delivered-To: $user'" "$TMP/dovecot-$via.eml"
    grep -q '^X-Portcullis-Attribution: tenant=fabrikam; auth-as=anonymous' "$TMP/dovecot-$via.eml" ||
        fail "dovecot ($via): the message lacks 'X-Portcullis-Attribution: tenant=fabrikam; auth-as=anonymous'" "$TMP/dovecot-$via.eml"
    ((EUID != 0)) || [[ $(stat -c %u "$f") == "$MAIL_UID" ]] ||
        fail "dovecot ($via): $f is not owned by uid $MAIL_UID" <(ls -ln "$f")
    ok "dovecot ($via): $user's Maildir/new has the message, with Delivered-To and X-Portcullis-Attribution"
    wait_status "$ID" fabrikam delivered 10
    trace_check "$ID" "dovecot ($via): status \"delivered\", dovecot's '250 2.0.0 <$user> … Saved', DELIVER event naming $route" \
        '.status == "delivered" and .recipients[0].status == "delivered"
         and (.recipients[0].reply | test("^250 2\\.0\\.0 <" + $u + "> .*Saved"))
         and ([.events[] | select(.event == "DELIVER" and (.detail | startswith($r + ": 1 recipient")))] | length == 1)' \
        --arg u "$user" --arg r "$route"
done
grep -q 'saved mail to INBOX' "$DV/dovecot.log" || fail "dovecot's log does not say 'saved mail to INBOX'" "$DV/dovecot.log"
ok "dovecot's log: saved mail to INBOX"

# ---------------------------------------------------------------------------------------------
# 3. Downstream down, then up: deferred, then delivered on a retry.
# ---------------------------------------------------------------------------------------------
listening $LATE_ADDR "$LATE_PORT" && fail "something already listens on $LATE_ADDR:$LATE_PORT"
SUBJ_LATE="Portcullis delivery: late downstream $$"
ID=$(smtp late --from ceo@contoso.com --to lena@contoso.dev --h-Subject "$SUBJ_LATE")
wait_status "$ID" contoso deferred 10
trace_check "$ID" "downstream down: status \"deferred\", DEFER event naming $LATE_ROUTE, recipient pending" \
    '.status == "deferred" and .recipients[0].status != "delivered" and .recipients[0].status != "failed"
     and ([.events[] | select(.event == "DEFER" and (.detail | contains($r)))] | length >= 1)' --arg r "$LATE_ROUTE"
start_sink late $LATE_ADDR "$LATE_PORT"
UP=$(date +%s)
wait_status "$ID" contoso delivered 10
ok "downstream up: delivered $(($(date +%s) - UP)) s after the sink started"
trace_check "$ID" "after the retry: DELIVER event naming $LATE_ROUTE, recipient delivered with 250" \
    '.recipients[0].status == "delivered" and (.recipients[0].reply | startswith("250"))
     and ([.events[] | select(.event == "DELIVER" and (.detail | startswith($r)))] | length == 1)' --arg r "$LATE_ROUTE"
REC=$(dump_record late "$SUBJ_LATE") || fail "late sink: no message with Subject '$SUBJ_LATE'" "$TMP/late.dump"
printf '%s' "$REC" >"$TMP/sink-late.rec"
{ [[ $(grep -c '^X-Client-Addr: ' "$TMP/sink-late.rec") == 1 ]] &&
    grep -qxF "$CONTOSO_ATTRIBUTION" "$TMP/sink-late.rec"; } ||
    fail "late sink: expected exactly one copy of the message, with its X-Portcullis-Attribution" "$TMP/sink-late.rec"
ok "late sink: exactly one copy of the message"

# The 4xx-refused message is still being retried, never failed (give_up_after is 2 days).
wait_status "$ID_TEMPFAIL" contoso deferred 1
trace_check "$ID_TEMPFAIL" "4xx: still deferred, retried (more than one attempt)" \
    '[.events[] | select(.event == "DEFER" and (.detail | startswith("attempt ")))] | length >= 2'

# ---------------------------------------------------------------------------------------------
# 4. LMTP with several recipients in one transaction: one reply per recipient after DATA, from
#    smtp-sink (which writes its replies in one segment) and from dovecot.
# ---------------------------------------------------------------------------------------------
SUBJ_LMTP2="Portcullis delivery: LMTP two recipients $$"
ID=$(smtp lmtp2 --from ceo@contoso.com --to erin@contoso.net,frank@contoso.net --h-Subject "$SUBJ_LMTP2")
REC=$(dump_record lmtp "$SUBJ_LMTP2") || fail "LMTP sink: no message with Subject '$SUBJ_LMTP2'" "$TMP/lmtp.dump"
printf '%s' "$REC" >"$TMP/sink-lmtp2.rec"
{ [[ $(grep -c '^X-Client-Addr: ' "$TMP/sink-lmtp2.rec") == 1 ]] &&
    [[ $(grep -c '^X-Rcpt-Args: ' "$TMP/sink-lmtp2.rec") == 2 ]]; } ||
    fail "LMTP sink: expected one transaction with two recipients" "$TMP/sink-lmtp2.rec"
ok "LMTP sink: one transaction to erin@contoso.net and frank@contoso.net"
wait_status "$ID" contoso delivered 10
trace_check "$ID" "LMTP sink, 2 recipients: both delivered, each with its own 250 reply, one DELIVER event" \
    '.status == "delivered" and (.recipients | length == 2) and all(.recipients[]; .status == "delivered" and (.reply | startswith("250")))
     and ([.events[] | select(.event == "DELIVER" and (.detail | startswith($r + ": 2 recipient")))] | length == 1)' \
    --arg r "$LMTP_ROUTE"
REC=$(dump_record lmtp "$SUBJ_LMTP2") && printf '%s' "$REC" >"$TMP/sink-lmtp2.rec"
[[ $(grep -c '^X-Client-Addr: ' "$TMP/sink-lmtp2.rec") == 1 ]] ||
    fail "LMTP sink: the message was delivered more than once" "$TMP/sink-lmtp2.rec"
ok "LMTP sink: still exactly one copy"

SUBJ_DV2="Portcullis delivery: dovecot two recipients $$"
ID=$(smtp dovecot2 --local-interface 127.0.0.2 --from alice@sender.example --to mia@fabrikam.com,nina@fabrikam.com \
    --h-Subject "$SUBJ_DV2")
for user in mia@fabrikam.com nina@fabrikam.com; do
    dovecot_mail "$user" "$SUBJ_DV2" >/dev/null ||
        fail "dovecot: no message in $DV/mail/$user/Maildir/new" <(ls -laR "$DV/mail" 2>&1) "$DV/dovecot.log"
done
ok "dovecot: mia@fabrikam.com and nina@fabrikam.com each have the message in Maildir/new"
wait_status "$ID" fabrikam delivered 10
trace_check "$ID" "dovecot, 2 recipients: each delivered with its own '250 2.0.0 <address> … Saved'" \
    '.status == "delivered" and (.recipients | length == 2)
     and all(.recipients[]; .status == "delivered" and (. as $r | $r.reply | test("^250 2\\.0\\.0 <" + $r.address + "> .*Saved")))'

# ---------------------------------------------------------------------------------------------
# Graceful shutdown with a message still deferred.
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
ok "SIGTERM with a deferred message in the spool: server exited 0"

echo "# all $PASSED checks passed in $(($(date +%s) - START)) s"
