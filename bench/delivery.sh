#!/usr/bin/env bash
# End-to-end delivery throughput against Postfix as a relay, in the same run: postfix's smtp-source
# sends N messages (S parallel sessions, one message per connection) to the gateway, which routes
# tenant contoso to an smtp-sink downstream; then the same load goes to a private Postfix instance
# configured as a relay for contoso.com to the same sink. For each system:
#
#   end to end   N / (time from the first message sent until the sink has acknowledged all N)
#   accept       N / smtp-source's wall time (every message answered 250 after DATA)
#
# plus the CPU time (user and system) the system spent per message during the timed batch (the
# gateway's process; Postfix's master and all its children) and the fsync/fdatasync calls per message
# (system-wide, counted by `perf stat` when it works). Each system runs ROUNDS times, alternating
# which goes first, with a fresh gateway and data directory (a fresh Postfix queue) each time; the
# medians are compared and written into BENCHMARKS.md. No target is set: this is a comparison.
#
# Portcullis: release build, `[auth] enabled = false` (no DNS), tenant contoso with contoso.com,
# route smtp://127.0.0.1:SINK, `[delivery] max_per_destination = P`. Postfix: a private instance in
# the temp dir (its own main.cf, master.cf without chroot, queue and data directories, log file via
# postlogd), relay_domains = contoso.com, transport inline:{contoso.com=smtp:[127.0.0.1]:SINK},
# smtp_destination_concurrency_limit = P; /etc/postfix and /var/spool/postfix are never touched.
# Both spool durably (fsync) before answering 250; Postfix caches and reuses its connections to the
# sink (its defaults), the gateway does what it does.
#
# The sink is one `smtp-sink -c` shared by every run: its running counter (mesg=N, updated when "."
# is received) is polled, and each run waits for its own N on top of the count it started from.
#
# Usage: bench/delivery.sh [-m MESSAGES] [-s SESSIONS] [-l SIZE] [-w WARMUP] [-r ROUNDS]
#            [-p MAX_PER_DESTINATION] [--no-write]
#        (binary: target/release/portcullis, built, or $PORTCULLIS_BIN)
# Needs: postfix (smtp-source, smtp-sink, postfix); perf optional. Runs as root (smtp-sink -u root,
# postfix start). Uses only 127.0.0.1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$PATH:/usr/sbin:/sbin"

MESSAGES=5000
SESSIONS=16
SIZE=4000
WARMUP=200
ROUNDS=3
MAXDEST=16
WRITE=1
ARGS="$*"
while (($#)); do
    case $1 in
        -m) MESSAGES=$2; shift 2 ;;
        -s) SESSIONS=$2; shift 2 ;;
        -l) SIZE=$2; shift 2 ;;
        -w) WARMUP=$2; shift 2 ;;
        -r) ROUNDS=$2; shift 2 ;;
        -p) MAXDEST=$2; shift 2 ;;
        --no-write) WRITE=; shift ;;
        *) echo "usage: $0 [-m MESSAGES] [-s SESSIONS] [-l SIZE] [-w WARMUP] [-r ROUNDS] [-p MAX_PER_DESTINATION] [--no-write]" >&2; exit 2 ;;
    esac
done
((EUID == 0)) || { echo "FATAL: run as root (postfix start, smtp-sink -u root)" >&2; exit 1; }
for tool in smtp-source smtp-sink postfix postconf; do
    command -v "$tool" >/dev/null || { echo "FATAL: $tool is not installed (package: postfix)" >&2; exit 1; }
done
BIN=${PORTCULLIS_BIN:-$ROOT/target/release/portcullis}
if [[ -z ${PORTCULLIS_BIN:-} ]]; then
    echo "# cargo build --release -p portcullis"
    (cd "$ROOT" && cargo build --release -p portcullis) >&2
fi
[[ -x $BIN ]] || { echo "FATAL: $BIN not found" >&2; exit 1; }
MAIL_OWNER=$(postconf -dh mail_owner)
SETGID_GROUP=$(postconf -dh setgid_group)
PF_VERSION=$(postconf -dh mail_version)

TMP=$(mktemp -d)
# Postfix's daemons run as $MAIL_OWNER without chroot and must reach the queue under $TMP.
chmod 755 "$TMP"
SERVER_PID= SINK_PID= PERF_PID= PF_CONF=

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
# postfix_master_pid CONFDIR: the private instance's master, if it runs.
postfix_master_pid() {
    local q pid
    q=$(postconf -c "$1" -h queue_directory 2>/dev/null) || return 1
    pid=$(tr -dc '0-9' <"$q/pid/master.pid" 2>/dev/null) || return 1
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}
stop_postfix() {
    local conf=$1 pid _i
    pid=$(postfix_master_pid "$conf") || return 0
    postfix -c "$conf" stop >/dev/null 2>&1 || true
    for _i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true   # the children exit when their master is gone
}
cleanup() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    [[ -n $PF_CONF ]] && stop_postfix "$PF_CONF"
    [[ -n $PERF_PID ]] && stop_pid "$PERF_PID"
    stop_pid "$SINK_PID"
    [[ -n ${KEEP_TMP:-} ]] && echo "# kept $TMP" >&2 || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
die() { echo "FATAL: $1" >&2; shift; for f in "$@"; do echo "----- $f" >&2; tail -n 30 "$f" >&2 || true; done; exit 1; }

listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
free_port() {
    local p _i
    for _i in $(seq 50); do
        p=$((20000 + RANDOM % 40000))
        listening 127.0.0.1 "$p" || { echo "$p"; return 0; }
    done
    die "no free port on 127.0.0.1"
}
wait_listening() {
    local port=$1 what=$2 _i
    for _i in $(seq 100); do
        listening 127.0.0.1 "$port" && return 0
        sleep 0.1
    done
    die "$what does not listen on 127.0.0.1:$port after 10 s" "${@:3}"
}
now() { echo "$EPOCHREALTIME"; }

# ---------------------------------------------------------------------------------------------
# The downstream: one smtp-sink with a running counter on its standard output ("sess=N quit=N
# mesg=N\r" per event).
# ---------------------------------------------------------------------------------------------
SINK_PORT=$(free_port)
smtp-sink -u root -c "127.0.0.1:$SINK_PORT" 1024 >"$TMP/sink.count" 2>"$TMP/sink.log" &
SINK_PID=$!
wait_listening "$SINK_PORT" smtp-sink "$TMP/sink.log"
# sink_count [FIELD]: messages the sink has acknowledged so far (FIELD sess: sessions it has seen end).
sink_count() {
    local s f=${1:-mesg}
    s=$(tail -c 64 "$TMP/sink.count")
    [[ $s == *$f=* ]] || { echo 0; return; }
    s=${s##*$f=}
    echo "${s%%[!0-9]*}"
}
# wait_sink TARGET SECONDS: poll (every 20 ms) until the sink has acknowledged TARGET messages.
wait_sink() {
    local target=$1 deadline c
    deadline=$(awk -v t="$EPOCHREALTIME" -v s="$2" 'BEGIN { printf "%d", t + s }')
    while :; do
        c=$(sink_count)
        ((c >= target)) && return 0
        ((${EPOCHREALTIME%.*} < deadline)) || return 1
        kill -0 "$SINK_PID" 2>/dev/null || die "smtp-sink exited" "$TMP/sink.log"
        sleep 0.02
    done
}

# ---------------------------------------------------------------------------------------------
# Measurement helpers: CPU ticks (user, system) of a set of processes, fsync counts via perf.
# ---------------------------------------------------------------------------------------------
HZ=$(getconf CLK_TCK)
# cpu_gateway PID: "user sys" ticks of one process (all its threads).
cpu_gateway() { awk '{ print $14, $15 }' "/proc/$1/stat"; }
# cpu_postfix MASTER: "user sys" ticks of the master, its reaped children and its live children.
cpu_postfix() {
    local m=$1
    {
        awk '{ print $14 + $16, $15 + $17 }' "/proc/$m/stat"
        for c in $(ps -o pid= --ppid "$m"); do awk '{ print $14, $15 }' "/proc/$c/stat" 2>/dev/null || true; done
    } | awk '{ u += $1; s += $2 } END { print u, s }'
}
PERF_EVENTS=syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync
PERF_OK=
if command -v perf >/dev/null && perf stat -a -x, -e "$PERF_EVENTS" -- true >/dev/null 2>&1; then PERF_OK=1; fi
perf_start() {
    [[ -n $PERF_OK ]] || return 0
    perf stat -a -x, -e "$PERF_EVENTS" -o "$1" 2>/dev/null &
    PERF_PID=$!
    sleep 0.3
}
# perf_stop FILE: sets FSYNC_CALLS, the fsync + fdatasync calls counted since perf_start (or "-").
# Not in a subshell: it must wait for its own child.
perf_stop() {
    FSYNC_CALLS=-
    [[ -n $PERF_OK && -n $PERF_PID ]] || return 0
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
    PERF_PID=
    FSYNC_CALLS=$(awk -F, '$3 ~ /sys_enter_f(data)?sync/ { n += $1 } END { print n + 0 }' "$1")
}

SRC=(smtp-source -s "$SESSIONS" -l "$SIZE" -f a@partner.example -t bob@contoso.com -M client.bench.test)
# timed_batch DIR PORT CPUFN PID: warm-up, then the timed batch; sets ACCEPT, E2E (msg/s), SECS_ACCEPT,
# SECS_E2E, USER_US, SYS_US (CPU µs per message), FSYNCS (per message, or "-"), SESS (downstream
# sessions per message).
timed_batch() {
    local dir=$1 port=$2 cpufn=$3 pid=$4 base t0 t1 t2 u0 s0 u1 s1 f
    base=$(sink_count)
    # Options before the host: smtp-source stops reading options at the first operand.
    "${SRC[@]}" -m "$WARMUP" "127.0.0.1:$port" >"$dir/warmup.log" 2>&1 || die "warm-up batch failed" "$dir/warmup.log"
    wait_sink $((base + WARMUP)) 60 || die "warm-up: the sink has $(( $(sink_count) - base )) of $WARMUP after 60 s"
    base=$(sink_count)
    local sess0
    sess0=$(sink_count sess)
    perf_start "$dir/perf.txt"
    read -r u0 s0 < <("$cpufn" "$pid")
    t0=$(now)
    "${SRC[@]}" -m "$MESSAGES" "127.0.0.1:$port" >"$dir/timed.log" 2>&1 || die "timed batch failed" "$dir/timed.log"
    t1=$(now)
    wait_sink $((base + MESSAGES)) 600 || die "the sink has $(( $(sink_count) - base )) of $MESSAGES after 600 s"
    t2=$(now)
    read -r u1 s1 < <("$cpufn" "$pid")
    perf_stop "$dir/perf.txt"
    f=$FSYNC_CALLS
    sleep 0.5   # nothing more arrives (no duplicate deliveries)
    local got=$(( $(sink_count) - base ))
    ((got == MESSAGES)) || die "the sink acknowledged $got messages, expected $MESSAGES"
    # Downstream sessions that ended during the batch, per message (1.0: a connection per message).
    SESS=$(awk -v s="$(( $(sink_count sess) - sess0 ))" -v n="$MESSAGES" 'BEGIN { printf "%.2f", s / n }')
    read -r ACCEPT E2E SECS_ACCEPT SECS_E2E USER_US SYS_US < <(awk -v n="$MESSAGES" -v a="$t0" -v b="$t1" -v c="$t2" \
        -v u="$((u1 - u0))" -v s="$((s1 - s0))" -v hz="$HZ" \
        'BEGIN { printf "%.1f %.1f %.2f %.2f %.0f %.0f\n", n / (b - a), n / (c - a), b - a, c - a, u / hz / n * 1e6, s / hz / n * 1e6 }')
    if [[ $f == - ]]; then FSYNCS=-; else FSYNCS=$(awk -v f="$f" -v n="$MESSAGES" 'BEGIN { printf "%.1f", f / n }'); fi
}

# ---------------------------------------------------------------------------------------------
# Portcullis: a fresh gateway and data directory.
# ---------------------------------------------------------------------------------------------
run_portcullis() {
    local dir=$TMP/portcullis-$1
    mkdir -p "$dir"
    cat >"$dir/portcullis.toml" <<EOF
hostname = "mx.bench.test"

[smtp]
max_connections = 2000
max_connections_per_ip = 1000

[auth]
enabled = false

[delivery]
max_per_destination = $MAXDEST
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
    local pc=(env PORTCULLIS_SERVER="$admin" PORTCULLIS_DATA_DIR="$dir/data" "$BIN")
    "${pc[@]}" tenant add contoso >/dev/null
    "${pc[@]}" domain add contoso.com --tenant contoso >/dev/null
    "${pc[@]}" tenant set contoso --route "smtp://127.0.0.1:$SINK_PORT" >/dev/null
    timed_batch "$dir" "$port" cpu_gateway "$SERVER_PID"
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

# ---------------------------------------------------------------------------------------------
# Postfix: a private instance (config, queue, data, log) under $TMP, a fresh queue each round.
# ---------------------------------------------------------------------------------------------
run_postfix() {
    local dir=$TMP/postfix-$1 port
    port=$(free_port)
    mkdir -p "$dir/etc" "$dir/queue" "$dir/data"
    chown "$MAIL_OWNER:" "$dir/data"
    # The services a relay needs, none chrooted (the queue is not set up as a chroot jail).
    cat >"$dir/etc/master.cf" <<EOF
127.0.0.1:$port inet n - n - - smtpd
pickup     unix  n - n 60    1 pickup
cleanup    unix  n - n -     0 cleanup
qmgr       unix  n - n 300   1 qmgr
rewrite    unix  - - n -     - trivial-rewrite
bounce     unix  - - n -     0 bounce
defer      unix  - - n -     0 bounce
trace      unix  - - n -     0 bounce
verify     unix  - - n -     1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -     - proxymap
smtp       unix  - - n -     - smtp
relay      unix  - - n -     - smtp
error      unix  - - n -     - error
retry      unix  - - n -     - error
discard    unix  - - n -     - discard
anvil      unix  - - n -     1 anvil
scache     unix  - - n -     1 scache
postlog    unix-dgram n - n - 1 postlogd
EOF
    cat >"$dir/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
mail_owner = $MAIL_OWNER
setgid_group = $SETGID_GROUP
myhostname = relay.bench.test
mydomain = bench.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
local_recipient_maps =
local_transport = error:no local delivery
alias_maps =
alias_database =
relayhost =
relay_domains = contoso.com
transport_maps = inline:{contoso.com=smtp:[127.0.0.1]:$SINK_PORT}
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
smtp_destination_concurrency_limit = $MAXDEST
smtp_tls_security_level = none
smtpd_tls_security_level = none
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
biff = no
EOF
    postfix -c "$dir/etc" check >"$dir/check.log" 2>&1 || die "postfix check failed" "$dir/check.log"
    PF_CONF=$dir/etc
    postfix -c "$dir/etc" start >"$dir/start.log" 2>&1 || die "postfix start failed" "$dir/start.log" "$dir/maillog"
    wait_listening "$port" "postfix smtpd" "$dir/maillog"
    local master
    master=$(postfix_master_pid "$dir/etc") || die "no postfix master" "$dir/maillog"
    timed_batch "$dir" "$port" cpu_postfix "$master"
    local sent
    sent=$(grep -c ' status=sent ' "$dir/maillog" || true)
    ((sent == WARMUP + MESSAGES)) || die "postfix: $sent status=sent log lines, expected $((WARMUP + MESSAGES))" "$dir/maillog"
    stop_postfix "$dir/etc"
    PF_CONF=
}

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
echo "# $MESSAGES messages of $SIZE bytes, $SESSIONS parallel sessions, one message per connection, after $WARMUP untimed; $ROUNDS rounds"
echo "# sink 127.0.0.1:$SINK_PORT; max_per_destination / smtp_destination_concurrency_limit $MAXDEST; perf: $([[ -n $PERF_OK ]] && echo yes || echo no)"
PC_E2E=() PC_ACC=() PC_USER=() PC_SYS=() PC_FS=() PC_SESS=()
PF_E2E=() PF_ACC=() PF_USER=() PF_SYS=() PF_FS=() PF_SESS=()
pc() {
    run_portcullis "$1"
    PC_E2E+=("$E2E") PC_ACC+=("$ACCEPT") PC_USER+=("$USER_US") PC_SYS+=("$SYS_US") PC_FS+=("$FSYNCS") PC_SESS+=("$SESS")
    echo "round $1 portcullis: end to end $E2E msg/s ($MESSAGES in $SECS_E2E s), accept $ACCEPT msg/s ($SECS_ACCEPT s); CPU user $USER_US + sys $SYS_US µs/msg; fsyncs/msg $FSYNCS; downstream sessions/msg $SESS"
}
pf() {
    run_postfix "$1"
    PF_E2E+=("$E2E") PF_ACC+=("$ACCEPT") PF_USER+=("$USER_US") PF_SYS+=("$SYS_US") PF_FS+=("$FSYNCS") PF_SESS+=("$SESS")
    echo "round $1 postfix:    end to end $E2E msg/s ($MESSAGES in $SECS_E2E s), accept $ACCEPT msg/s ($SECS_ACCEPT s); CPU user $USER_US + sys $SYS_US µs/msg; fsyncs/msg $FSYNCS; downstream sessions/msg $SESS"
}
START=$(date +%s)
for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2)); then pc "$round"; pf "$round"; else pf "$round"; pc "$round"; fi
done
median() {
    [[ $1 == - ]] && { echo -; return; }
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.1f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
M_PC_E2E=$(median "${PC_E2E[@]}") M_PF_E2E=$(median "${PF_E2E[@]}")
M_PC_ACC=$(median "${PC_ACC[@]}") M_PF_ACC=$(median "${PF_ACC[@]}")
M_PC_USER=$(median "${PC_USER[@]}") M_PF_USER=$(median "${PF_USER[@]}")
M_PC_SYS=$(median "${PC_SYS[@]}") M_PF_SYS=$(median "${PF_SYS[@]}")
M_PC_FS=$(median "${PC_FS[@]}") M_PF_FS=$(median "${PF_FS[@]}")
M_PC_SESS=$(median "${PC_SESS[@]}") M_PF_SESS=$(median "${PF_SESS[@]}")
RATIO_E2E=$(awk -v a="$M_PC_E2E" -v b="$M_PF_E2E" 'BEGIN { printf "%.3f", a / b }')
RATIO_ACC=$(awk -v a="$M_PC_ACC" -v b="$M_PF_ACC" 'BEGIN { printf "%.3f", a / b }')
echo "portcullis: end to end median $M_PC_E2E msg/s (${PC_E2E[*]}), accept median $M_PC_ACC msg/s (${PC_ACC[*]}), CPU user $M_PC_USER + sys $M_PC_SYS µs/msg, fsyncs/msg $M_PC_FS, downstream sessions/msg ${PC_SESS[*]}"
echo "postfix:    end to end median $M_PF_E2E msg/s (${PF_E2E[*]}), accept median $M_PF_ACC msg/s (${PF_ACC[*]}), CPU user $M_PF_USER + sys $M_PF_SYS µs/msg, fsyncs/msg $M_PF_FS, downstream sessions/msg ${PF_SESS[*]}"
echo "ratio portcullis / postfix: end to end $RATIO_E2E, accept $RATIO_ACC"
echo "# $(($(date +%s) - START)) s"

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
if [[ -n $PERF_OK ]]; then
    FSYNC_NOTE="fsync + fdatasync calls per message are counted system-wide by \`perf stat\` over the timed window
(nothing else on the machine is excluded)."
else
    FSYNC_NOTE="fsync counts: not measured (\`perf stat\` with syscall tracepoints did not work here)."
fi
{
    head -n 4 "$OUT"
    cat <<EOF
## Delivery: end-to-end throughput against Postfix as a relay

Target: none set; a comparison with Postfix $PF_VERSION relaying the same load to the same downstream.

- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $COMMIT$DIRTY
- Machine: $(nproc) cores ($CPU), $MEM, $(uname -sr)
- Command: \`bench/delivery.sh${ARGS:+ $ARGS}\` (release build; $MESSAGES messages, $SESSIONS sessions, $SIZE bytes, $WARMUP warm-up, $ROUNDS rounds)
- Load: postfix \`smtp-source -s $SESSIONS -m $MESSAGES -l $SIZE\`, one message per connection, all from 127.0.0.1,
  \`a@partner.example\` → \`bob@contoso.com\`; downstream one \`smtp-sink -c\` on 127.0.0.1 shared by all runs.
  Portcullis: \`[auth] enabled = false\`, tenant route \`smtp://127.0.0.1:PORT\`, \`max_per_destination = $MAXDEST\`.
  Postfix: private instance (no chroot), \`relay_domains = contoso.com\`, \`transport_maps =
  inline:{contoso.com=smtp:[127.0.0.1]:PORT}\`, \`smtp_destination_concurrency_limit = $MAXDEST\`, log via postlogd,
  other settings default (connection caching on, \`in_flow_delay = 1s\`). Both fsync their queue before 250.
  An untimed batch of $WARMUP first; $ROUNDS rounds per system, alternating which goes first; a fresh
  gateway and data directory (a fresh Postfix queue) each time.
- End to end: from the first message sent until the sink has acknowledged all $MESSAGES (counter polled every
  20 ms). Accept: smtp-source's wall time. CPU: the gateway process; Postfix's master and all its children.
- Load average before the run: $LOAD

| system | end to end msg/s (median) | each round | accept msg/s (median) | each round | CPU µs/msg user + sys (median) | fsyncs/msg | downstream sessions/msg |
|---|---|---|---|---|---|---|---|
| Portcullis | $M_PC_E2E | ${PC_E2E[*]} | $M_PC_ACC | ${PC_ACC[*]} | $M_PC_USER + $M_PC_SYS | $M_PC_FS | $M_PC_SESS |
| Postfix | $M_PF_E2E | ${PF_E2E[*]} | $M_PF_ACC | ${PF_ACC[*]} | $M_PF_USER + $M_PF_SYS | $M_PF_FS | $M_PF_SESS |

Per round, CPU user + sys µs/msg — Portcullis: $(paste -d+ <(printf '%s\n' "${PC_USER[@]}") <(printf '%s\n' "${PC_SYS[@]}") | tr '\n' ' ')— Postfix:
$(paste -d+ <(printf '%s\n' "${PF_USER[@]}") <(printf '%s\n' "${PF_SYS[@]}") | tr '\n' ' ')(downstream sessions/msg: SMTP sessions the sink saw end
during the batch per message; 1.00 is a new connection per message). $FSYNC_NOTE

Ratio Portcullis / Postfix: **$RATIO_E2E** end to end; $RATIO_ACC accept.

EOF
    tail -n +5 "$OUT"
} >"$OUT.new"
mv "$OUT.new" "$OUT"
echo "# written to $OUT"
