# Shared helpers for the interop scripts (sourced, not run).
#
# ok MESSAGE                   counts a passing check and prints "ok - MESSAGE".
# fail MESSAGE [FILE...]       prints "not ok - MESSAGE", the last 200 lines of each FILE (the
#                              transcripts of the failed step), the last 40 lines of each log the
#                              script named in FAIL_LOGS (paths or glob patterns, expanded at the
#                              failure), how many checks passed in how long (START), and exits 1.
# start_knot DIR ZONEFILE...   knot (knotd) authoritative on 127.0.0.1:$KNOT_PORT (default 5353), UDP and
#                              TCP, for the zones in ZONEFILE... and every parent zone up to the root;
#                              config, generated zones and log in DIR; waits until kdig gets answers.
# knot_queries                 how many queries knot has answered so far (mod-stats), e.g. to check
#                              that a cache works.
# stop_knot                    stops it (call from the EXIT trap; safe to call twice).
# txt_rdata VALUE              VALUE as TXT rdata: quoted strings of at most 255 bytes each.
#
# A zone file is named <apex>.zone ("contoso.com.zone"). Its records may use names relative to the
# apex; when it has no SOA record, $ORIGIN, $TTL, an SOA and an NS record are put in front of it.
# Parent zones (com., example., the root) are generated with just SOA and NS, so that every query
# for a name we do not serve gets an authoritative NXDOMAIN instead of REFUSED (DMARC's tree walk
# and SPF on HELO names ask about such names; REFUSED would be a temporary error).
#
# Needs: knot (knotd), knot-dnsutils (kdig). Runs knotd as the current user (root on CI).

PASSED=0
START=${START:-$(date +%s)}
FAIL_LOGS=()

ok() { PASSED=$((PASSED + 1)); echo "ok - $*"; }

fail() {
    local msg=$1; shift
    echo "not ok - $msg" >&2
    local f pattern
    for f in "$@"; do
        echo "----- $(basename "$f") -----" >&2
        tail -n 200 "$f" >&2 || true
    done
    for pattern in "${FAIL_LOGS[@]}"; do
        # shellcheck disable=SC2086  # a pattern: expanded here, at the failure
        for f in $pattern; do
            [[ -s $f ]] || continue
            echo "----- $(basename "$f") (last 40 lines) -----" >&2
            tail -n 40 "$f" >&2 || true
        done
    done
    echo "FAILED after $PASSED passing checks ($(($(date +%s) - START)) s)" >&2
    exit 1
}

KNOT_PORT=${KNOT_PORT:-5353}
KNOT_PID=
KNOT_CONF=

# txt_rdata VALUE: prints "chunk1" "chunk2" ... (RFC 1035: a character-string is at most 255 bytes).
txt_rdata() {
    local v=$1 out=
    while ((${#v} > 255)); do
        out+="\"${v:0:255}\" "
        v=${v:255}
    done
    printf '%s"%s"\n' "$out" "$v"
}

# _knot_zone_head APEX: $ORIGIN, $TTL, SOA and NS for a zone (the NS name is nominal: nobody
# resolves it).
_knot_zone_head() {
    local apex=$1
    printf '$ORIGIN %s\n$TTL 3600\n' "$apex"
    printf '@ 3600 IN SOA ns.interop.test. hostmaster.interop.test. 1 3600 600 86400 300\n'
    printf '@ 3600 IN NS ns.interop.test.\n'
    # The root zone holds the name server's address (glue), which keeps knot's checks quiet.
    [[ $apex == . ]] && printf 'ns.interop.test. 3600 IN A 127.0.0.1\n'
    return 0
}

# _knot_file APEX: the generated zone file's name ("contoso.com.zone", "root.zone").
_knot_file() {
    if [[ $1 == . ]]; then echo root.zone; else echo "${1%.}.zone"; fi
}

start_knot() {
    local dir=$1; shift
    command -v knotd >/dev/null || { echo "FATAL: knotd is not installed (Debian package knot)" >&2; return 1; }
    command -v kdig >/dev/null || { echo "FATAL: kdig is not installed (Debian package knot-dnsutils)" >&2; return 1; }
    mkdir -p "$dir/zones" "$dir/db"
    local -A apexes=()
    local f apex name parent
    for f in "$@"; do
        name=$(basename "$f")
        [[ $name == *.zone ]] || { echo "FATAL: zone file $f is not named <apex>.zone" >&2; return 1; }
        apex=${name%.zone}
        apex=${apex%.}.
        [[ $apex == .. ]] && apex=.
        if grep -Eq '^[^;]*[[:space:]]SOA[[:space:]]' "$f"; then
            cp "$f" "$dir/zones/$(_knot_file "$apex")"
        else
            { _knot_zone_head "$apex"; cat "$f"; } >"$dir/zones/$(_knot_file "$apex")"
        fi
        apexes[$apex]=1
    done
    # Every parent up to the root, unless given.
    for apex in "${!apexes[@]}"; do
        parent=$apex
        while [[ $parent != . ]]; do
            parent=${parent#*.}
            [[ -z $parent ]] && parent=.
            if [[ -z ${apexes[$parent]:-} ]]; then
                _knot_zone_head "$parent" >"$dir/zones/$(_knot_file "$parent")"
                apexes[$parent]=1
            fi
        done
    done

    {
        printf 'server:\n    rundir: "%s"\n    listen: 127.0.0.1@%s\n' "$dir" "$KNOT_PORT"
        printf 'log:\n  - target: stderr\n    any: info\n'
        printf 'database:\n    storage: "%s/db"\n' "$dir"
        printf 'template:\n  - id: default\n    storage: "%s/zones"\n    global-module: mod-stats\n' "$dir"
        printf '    zonefile-sync: -1\n    journal-content: none\n'
        printf 'zone:\n'
        for apex in "${!apexes[@]}"; do
            printf '  - domain: "%s"\n    file: "%s"\n' "$apex" "$(_knot_file "$apex")"
        done
    } >"$dir/knot.conf"

    # The port must be free: an old knotd (or mDNS) there would answer for us.
    if kdig @127.0.0.1 -p "$KNOT_PORT" +timeout=1 +retry=0 . SOA >/dev/null 2>&1; then
        echo "FATAL: something already answers DNS on 127.0.0.1:$KNOT_PORT (set KNOT_PORT)" >&2
        return 1
    fi
    KNOT_CONF=$dir/knot.conf
    knotd -c "$dir/knot.conf" >"$dir/knot.log" 2>&1 &
    KNOT_PID=$!

    # Ready when every zone answers its SOA authoritatively over UDP, and TCP answers too.
    local pending i
    for i in $(seq 100); do
        if ! kill -0 "$KNOT_PID" 2>/dev/null; then
            echo "FATAL: knotd exited during start-up" >&2
            cat "$dir/knot.log" >&2
            KNOT_PID=
            return 1
        fi
        pending=0
        for apex in "${!apexes[@]}"; do
            kdig @127.0.0.1 -p "$KNOT_PORT" +timeout=1 +retry=0 +norec "$apex" SOA 2>/dev/null |
                grep -q 'status: NOERROR' || { pending=1; break; }
        done
        if ((pending == 0)) &&
            kdig @127.0.0.1 -p "$KNOT_PORT" +tcp +timeout=1 +retry=0 . SOA 2>/dev/null | grep -q 'status: NOERROR'; then
            return 0
        fi
        sleep 0.1
    done
    echo "FATAL: knotd did not answer for all zones on 127.0.0.1:$KNOT_PORT within 10 s" >&2
    cat "$dir/knot.log" >&2
    return 1
}

knot_queries() {
    knotc -c "$KNOT_CONF" stats mod-stats.request-protocol 2>/dev/null |
        awk -F' = ' '{ n += $2 } END { print n + 0 }'
}

stop_knot() {
    if [[ -n $KNOT_PID ]] && kill -0 "$KNOT_PID" 2>/dev/null; then
        kill -TERM "$KNOT_PID" 2>/dev/null || true
        local _i
        for _i in $(seq 50); do
            kill -0 "$KNOT_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$KNOT_PID" 2>/dev/null || true
        wait "$KNOT_PID" 2>/dev/null || true
    fi
    KNOT_PID=
}
