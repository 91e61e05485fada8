#!/usr/bin/env bash
# The Debian package as an administrator gets it: built with cargo-deb (packaging/build-deb.sh),
# checked by lintian, installed with dpkg -i, its systemd unit verified (systemd-analyze verify,
# and its exposure scored offline by systemd-analyze security), and the installed binary started
# as the portcullis user with only CAP_NET_BIND_SERVICE on the packaged configuration (the unit's
# sandboxing needs systemd as PID 1: verified offline only) — answering on port 25 and to the
# CLI, its files private. Removed (purged) at the end, so the next run installs afresh; it refuses
# to run where portcullis is installed or its data lies.
#
# Usage: tests/interop/package.sh      (as root: it installs the package)
# Needs: cargo-deb, lintian, dpkg, systemd (systemd-analyze), swaks, setpriv (util-linux).
# The gateway listens on 127.0.0.1 only (--smtp-listen overrides the packaged 0.0.0.0:25).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/interop/lib.sh
source "$ROOT/tests/interop/lib.sh"
TMP=$(mktemp -d)
SERVER_PID=

# What this run installs it removes again; it never touches an installation it did not make.
MARKER=/var/lib/.portcullis-installed-by-package-test
OURS=
cleanup() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ -n $OURS ]]; then
        dpkg --purge portcullis >/dev/null 2>&1 || true
        rm -rf /var/lib/portcullis
        rm -f "$MARKER"
    fi
    [[ -n ${KEEP_TMP:-} ]] && echo "# kept $TMP" >&2 || rm -rf "$TMP"
}
trap cleanup EXIT

FAIL_LOGS=("$TMP/server.log")

[[ $(id -u) == 0 ]] || { echo "FATAL: run as root (installs the package)" >&2; exit 1; }
for tool in cargo-deb lintian dpkg systemd-analyze swaks setpriv; do
    command -v "$tool" >/dev/null || { echo "FATAL: $tool is not installed" >&2; exit 1; }
done

# A real installation (the package, or the data a purge keeps) is not ours to remove: refuse.
# A previous run's leftovers (marked) would hide a missing step of this one: removed.
if [[ -e /var/lib/portcullis && ! -e $MARKER ]] || { dpkg -s portcullis >/dev/null 2>&1 && [[ ! -e $MARKER ]]; }; then
    echo "FATAL: portcullis is installed here, or /var/lib/portcullis holds data; this test installs and purges the package, so it will not run on such a machine" >&2
    exit 1
fi
dpkg --purge portcullis >/dev/null 2>&1 || true
rm -rf /var/lib/portcullis
OURS=1
touch "$MARKER"

DEB=$("$ROOT/packaging/build-deb.sh" 2>"$TMP/build.log") || fail "packaging/build-deb.sh" "$TMP/build.log"
[[ -f $ROOT/$DEB ]] || fail "no package built ($DEB)" "$TMP/build.log"
DEB=$ROOT/$DEB
ok "built $(basename "$DEB")"

dpkg-deb --contents "$DEB" >"$TMP/contents"
for f in ./usr/bin/portcullis ./etc/portcullis/portcullis.toml ./usr/share/man/man1/portcullis.1.gz \
    ./usr/share/bash-completion/completions/portcullis ./usr/share/zsh/vendor-completions/_portcullis \
    ./usr/share/fish/vendor_completions.d/portcullis.fish; do
    grep -q " $f\$" "$TMP/contents" || fail "the package lacks $f" "$TMP/contents"
done
grep -Eq ' \./(usr/)?lib/systemd/system/portcullis\.service$' "$TMP/contents" \
    || fail "the package lacks the systemd unit" "$TMP/contents"
dpkg-deb --info "$DEB" >"$TMP/info"
dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./conffiles >"$TMP/conffiles"
grep -qx /etc/portcullis/portcullis.toml "$TMP/conffiles" || fail "the configuration is not a conffile" "$TMP/conffiles"
ok "contents: binary, unit, conffile /etc/portcullis/portcullis.toml, man page, bash/zsh/fish completions"

# lintian: no errors (warnings are printed for the record).
lintian --tag-display-limit 0 "$DEB" >"$TMP/lintian" 2>&1 || true
if grep -q '^E:' "$TMP/lintian"; then fail "lintian reports errors" "$TMP/lintian"; fi
echo "# lintian: $(grep -c '^W:' "$TMP/lintian" || true) warning(s)"
sed 's/^/#   /' "$TMP/lintian"
ok "lintian: no errors"

DEBIAN_FRONTEND=noninteractive dpkg -i "$DEB" >"$TMP/dpkg.log" 2>&1 || fail "dpkg -i" "$TMP/dpkg.log"
getent passwd portcullis >/dev/null || fail "no portcullis user after installation" "$TMP/dpkg.log"
[[ $(stat -c '%U:%G %a' /etc/portcullis/portcullis.toml) == "root:portcullis 640" ]] \
    || fail "/etc/portcullis/portcullis.toml is $(stat -c '%U:%G %a' /etc/portcullis/portcullis.toml), want root:portcullis 640"
[[ $(stat -c '%U %a' /var/lib/portcullis) == "portcullis 700" ]] \
    || fail "/var/lib/portcullis is $(stat -c '%U %a' /var/lib/portcullis), want portcullis 700"
zcat /usr/share/man/man1/portcullis.1.gz | grep -q '^\.TH portcullis 1' || fail "the man page is not a man page"
/usr/bin/portcullis --version | grep -q '^portcullis ' || fail "installed binary --version"
ok "dpkg -i: user portcullis, /var/lib/portcullis 0700, configuration root:portcullis 0640, man page, $(/usr/bin/portcullis --version)"

UNIT=
for u in /lib/systemd/system/portcullis.service /usr/lib/systemd/system/portcullis.service; do
    [[ -f $u ]] && UNIT=$u && break
done
[[ -n $UNIT ]] || fail "the unit is not installed"
systemd-analyze verify "$UNIT" >"$TMP/verify" 2>&1 || fail "systemd-analyze verify $UNIT" "$TMP/verify"
if grep -v -e 'Failed to set up the root directory' -e '^$' "$TMP/verify" | grep -qi 'portcullis'; then
    fail "systemd-analyze verify complains about the unit" "$TMP/verify"
fi
ok "systemd-analyze verify $UNIT"
# Exposure as systemd scores it (0 = fully confined, 10 = unconfined); a regression of the
# hardening shows here.
if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
    systemd-analyze security --offline=true "$UNIT" >"$TMP/security" 2>&1 || true
    score=$(grep -oE 'Overall exposure level for portcullis\.service: [0-9.]+' "$TMP/security" | grep -oE '[0-9.]+$' || true)
    [[ -n $score ]] || fail "systemd-analyze security gave no score" "$TMP/security"
    awk -v s="$score" 'BEGIN { exit !(s < 2.5) }' || fail "exposure $score, want under 2.5" "$TMP/security"
    ok "systemd-analyze security: exposure $score"
fi

# Start it with what the unit gives it: its user, only CAP_NET_BIND_SERVICE (ambient), NO_COLOR,
# the packaged configuration; loopback only. The unit's sandboxing (system-call filter,
# ProtectSystem, MemoryDenyWriteExecute ...) needs systemd as PID 1, which this machine does not
# run: it is verified and scored above, not exercised.
# Its stderr stands in for the journal: JOURNAL_STREAM names the log file's device and inode, as
# systemd names the journal's stream.
cd /
: >"$TMP/server.log"
setpriv --reuid=portcullis --regid=portcullis --init-groups \
    --inh-caps=-all,+net_bind_service --ambient-caps=-all,+net_bind_service --bounding-set=-all,+net_bind_service \
    env NO_COLOR=1 JOURNAL_STREAM="$(stat -c '%d:%i' "$TMP/server.log")" /usr/bin/portcullis serve --config /etc/portcullis/portcullis.toml \
    --smtp-listen 127.0.0.1:25 >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
    grep -q '^portcullis: SMTP on' "$TMP/server.log" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || fail "the installed gateway exited at start" "$TMP/server.log"
    sleep 0.1
done
grep -q '^portcullis: SMTP on' "$TMP/server.log" || fail "the installed gateway is not ready after 10 s" "$TMP/server.log"
ok "installed binary started as user portcullis with only CAP_NET_BIND_SERVICE and the packaged configuration"

swaks --server 127.0.0.1:25 --quit-after EHLO --ehlo client.test.example >"$TMP/swaks" 2>&1 \
    || fail "swaks EHLO on port 25" "$TMP/swaks"
grep -q '<-  220 .* ESMTP Portcullis' "$TMP/swaks" || fail "no Portcullis banner on port 25" "$TMP/swaks"
ok "port 25 answers: $(grep -m1 '<-  220' "$TMP/swaks" | cut -c5-)"

PC=(/usr/bin/portcullis --data-dir /var/lib/portcullis)
"${PC[@]}" tenant add contoso >"$TMP/cli" 2>&1 || fail "CLI tenant add with the packaged data dir" "$TMP/cli"
"${PC[@]}" tenant list | grep -q contoso || fail "CLI tenant list"
"${PC[@]}" config show >"$TMP/config" 2>&1 || fail "config show" "$TMP/config"
grep -q '^data_dir = "/var/lib/portcullis"' "$TMP/config" || fail "the running configuration is not the packaged one" "$TMP/config"
ok "CLI against the installed gateway (token from /var/lib/portcullis/admin.token)"

# Everything it created is its own and private.
bad=$(find /var/lib/portcullis \( -type f ! -perm 600 \) -o \( -type d ! -perm 700 \) -o ! -user portcullis)
[[ -z $bad ]] || fail "files not portcullis-owned 0600/0700: $bad"
ok "state files: owned by portcullis, 0600/0700"

kill -HUP "$SERVER_PID"
sleep 0.5
kill -0 "$SERVER_PID" 2>/dev/null || fail "SIGHUP (ExecReload) stopped the gateway" "$TMP/server.log"
grep -q 'reloaded' "$TMP/server.log" || fail "SIGHUP not logged as a reload" "$TMP/server.log"
kill -TERM "$SERVER_PID"
rc=0
wait "$SERVER_PID" || rc=$?
SERVER_PID=
((rc == 0)) || fail "SIGTERM: exit status $rc" "$TMP/server.log"
if grep -q $'\e\[' "$TMP/server.log"; then fail "colour codes in the log" "$TMP/server.log"; fi
if grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' "$TMP/server.log"; then
    fail "timestamps in lines the journal stamps itself" "$TMP/server.log"
fi
grep -q 'INFO' "$TMP/server.log" || fail "no log lines" "$TMP/server.log"
ok "SIGHUP reloads, SIGTERM stops cleanly (exit 0), log lines without colour or a second timestamp"

dpkg --purge portcullis >"$TMP/purge.log" 2>&1 || fail "dpkg --purge" "$TMP/purge.log"
[[ ! -e /usr/bin/portcullis && ! -e $UNIT && ! -e /etc/portcullis/portcullis.toml ]] || fail "files left after purge"
[[ -f /var/lib/portcullis/portcullis.db && -e $MARKER ]] || fail "purge removed the data (quarantine, queue, trace)"
ok "dpkg --purge removes the package and its configuration, keeps /var/lib/portcullis"

echo "# package: $PASSED checks passed in $(($(date +%s) - START)) s"
