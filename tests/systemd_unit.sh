#!/usr/bin/env bash
# Checks dedyn-update.service: `systemd-analyze verify` passes, `systemd-analyze
# security` rates it OK or better (exposure <= 3.0), the hardening docs/install.md promises
# is there, and every system call the server and its reload commands really make
# (traced with strace) passes SystemCallFilter=@system-service ~@privileged.
#
# Usage: tests/systemd_unit.sh   (builds the debug binary in $CARGO_TARGET_DIR or target/)
# Prints one line per check and a final "N passed, M failed"; exits 1 on any failure.
set -u
cd "$(dirname "$0")/.."
UNIT=dedyn-update.service
MAX_EXPOSURE=3.0
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   - $1"; }
bad() {
	fail=$((fail + 1))
	echo "FAIL - $1"
	if [ -n "${2:-}" ]; then printf '%s\n' "$2" | sed 's/^/       /'; fi
}
finish() {
	echo "$pass passed, $fail failed"
	[ "$fail" -eq 0 ]
	exit
}

if ! command -v systemd-analyze >/dev/null; then
	if [ "$(id -u)" -eq 0 ]; then
		apt-get install -y -q systemd >/dev/null || { bad "installing systemd (for systemd-analyze)"; finish; }
	else
		bad "systemd-analyze is missing: install package systemd (as root), then rerun"
		finish
	fi
fi

TMP=$(mktemp -d /tmp/dedyn-unit.XXXXXX)
SERVER_PID=""
STRACE_PID=""
cleanup() {
	[ -n "$SERVER_PID" ] && kill -KILL "$SERVER_PID" 2>/dev/null
	[ -n "$STRACE_PID" ] && kill -KILL "$STRACE_PID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

# verify wants the ExecStart binary to exist: point a copy of the unit at ours.
TARGET=${CARGO_TARGET_DIR:-target}
cargo build -q || { bad "cargo build"; finish; } # quick when up to date; never a stale binary
BIN=$(realpath "$TARGET/debug/dedyn-update")
mkdir -p "$TMP/unit"
sed "s#^ExecStart=/usr/bin/dedyn-update#ExecStart=$BIN#" "$UNIT" >"$TMP/unit/$UNIT"
grep -q "^ExecStart=$BIN " "$TMP/unit/$UNIT" || bad "ExecStart is not /usr/bin/dedyn-update ..." "$(grep ExecStart "$UNIT")"

# 1. verify: exit 0 and no complaint about our unit.
out=$(systemd-analyze verify "$TMP/unit/$UNIT" 2>&1)
rc=$?
if [ $rc -eq 0 ] && ! printf '%s' "$out" | grep -q "$UNIT"; then
	ok "systemd-analyze verify"
else
	bad "systemd-analyze verify (rc $rc)" "$out"
fi

# 2. security rating, offline (the unit need not be installed or loaded).
exposure() {
	systemd-analyze security --offline=true "$1" 2>&1 |
		sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p'
}
read -r score rating <<<"$(exposure "$TMP/unit/$UNIT")"
if [ -n "${score:-}" ] && awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }'; then
	ok "systemd-analyze security: exposure $score $rating (<= $MAX_EXPOSURE)"
else
	bad "systemd-analyze security: exposure '${score:-?}' ${rating:-} (want <= $MAX_EXPOSURE)" \
		"$(systemd-analyze security --offline=true "$TMP/unit/$UNIT" 2>&1 | grep '✗')"
fi
# ... and the check bites: the same unit without its hardening is rated worse.
grep -E '^(\[|Description|ExecStart|ExecReload|User|Group|Type)' "$TMP/unit/$UNIT" >"$TMP/weak.service"
read -r wscore _ <<<"$(exposure "$TMP/weak.service")"
if [ -n "${wscore:-}" ] && awk -v s="$wscore" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s > m) }'; then
	ok "an unhardened copy is rejected (exposure $wscore)"
else
	bad "an unhardened copy should score above $MAX_EXPOSURE, got '${wscore:-?}'"
fi

# 3. the directives docs/install.md promises.
for d in \
	'User=dedyn-update' 'StateDirectory=dedyn-update' \
	'AmbientCapabilities=CAP_NET_BIND_SERVICE' 'CapabilityBoundingSet=CAP_NET_BIND_SERVICE' \
	'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' 'NoNewPrivileges=yes' \
	'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' 'SystemCallFilter=@system-service' \
	'SystemCallFilter=~@privileged' 'SystemCallErrorNumber=EPERM' \
	'ReadWritePaths=/var/lib/dedyn-update' 'ExecReload=/bin/kill -HUP $MAINPID' 'LimitNOFILE=65536'; do
	if grep -qxF "$d" "$UNIT"; then ok "$d"; else bad "missing: $d"; fi
done

# 4. every system call actually made is allowed by the filter.
expand() { # a syscall group, recursively, one name a line
	systemd-analyze syscall-filter "$1" | tail -n +2 | sed 's/^ *//' | grep -v '^#' | grep -v '^$' |
		while read -r n; do
			case "$n" in @*) expand "$n" ;; *) echo "$n" ;; esac
		done
}
expand @system-service | sort -u >"$TMP/allowed"
expand @privileged | sort -u >"$TMP/privileged"
comm -23 "$TMP/allowed" "$TMP/privileged" >"$TMP/effective"
if ! command -v strace >/dev/null || ! command -v curl >/dev/null; then
	bad "strace and curl are needed to trace the server (tests/install-deps.sh)"
	finish
fi
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP=$(port)
METRICS=$(port)
reload=":"
command -v nsd-control >/dev/null && reload="$reload; nsd-control -s $TMP/none.ctl reload {zone} 2>/dev/null"
command -v knotc >/dev/null && reload="$reload; knotc -s $TMP/none.sock zone-reload {zone} 2>/dev/null"
cat >"$TMP/config.toml" <<CONF
[server]
http_listen = ["127.0.0.1:$HTTP"]
metrics_listen = "127.0.0.1:$METRICS"
[database]
path = "$TMP/db.sqlite3"
[dns]
reload_command = "$reload; touch $TMP/reloaded"
publish_delay_ms = 10
[[zone]]
name = "dedyn.example"
file = "$TMP/zones/dedyn.example.zone"
nameservers = ["ns1.example.net."]
[rate_limit]
dyndns_per_domain = ""
CONF
# The unit runs as an unprivileged user, and as root some code takes other paths
# (SQLite fchown()s new -wal/-shm files to the database's owner): trace as nobody.
AS=()
if [ "$(id -u)" -eq 0 ]; then
	AS=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
	cp "$BIN" "$TMP/dedyn-update" && BIN="$TMP/dedyn-update"
	chown -R nobody:nogroup "$TMP"
	chmod 0755 "$TMP"
fi
cli() { "${AS[@]}" "$BIN" --config "$TMP/config.toml" "$@"; }
cli user add a@example.org && cli domain add a.dedyn.example --owner a@example.org &&
	TOKEN=$(cli token add --owner a@example.org) || { bad "provisioning a test user"; finish; }
"${AS[@]}" strace -f -qq -c -o "$TMP/syscalls" "$BIN" --config "$TMP/config.toml" serve 2>"$TMP/serve.log" &
STRACE_PID=$!
for _ in $(seq 1 200); do # up to 10 s
	SERVER_PID=$(ps -o pid= --ppid "$STRACE_PID" | tr -d ' ')
	[ -n "$SERVER_PID" ] && curl -s -o /dev/null "http://127.0.0.1:$HTTP/" && break
	sleep 0.05
done
served=$(curl -s -H "Authorization: Token $TOKEN" "http://127.0.0.1:$HTTP/?myipv4=192.0.2.1&myipv6=")
curl -s -o /dev/null "http://127.0.0.1:$METRICS/metrics"
for _ in $(seq 1 100); do # the publication of the update, reload command included
	grep -q 192.0.2.1 "$TMP/zones/dedyn.example.zone" 2>/dev/null && [ -e "$TMP/reloaded" ] && break
	sleep 0.05
done
[ -e "$TMP/reloaded" ] || bad "the reload command did not run under the trace" "$(tail -5 "$TMP/serve.log")"
kill -HUP "$SERVER_PID" 2>/dev/null
for _ in $(seq 1 100); do grep -q SIGHUP "$TMP/serve.log" && break; sleep 0.05; done
kill -TERM "$SERVER_PID" 2>/dev/null
for _ in $(seq 1 200); do kill -0 "$STRACE_PID" 2>/dev/null || break; sleep 0.05; done
# Bounded: a server that ignores SIGTERM fails this test instead of hanging it.
if kill -0 "$STRACE_PID" 2>/dev/null; then
	bad "the traced server (pid '$SERVER_PID') did not stop within 10 s of SIGTERM" "$(tail -5 "$TMP/serve.log")"
	kill -KILL "$SERVER_PID" "$STRACE_PID" 2>/dev/null
fi
wait "$STRACE_PID" 2>/dev/null
STRACE_PID=""
SERVER_PID=""
[ "$served" = good ] || bad "the traced server did not answer the update (got '$served')" "$(tail -5 "$TMP/serve.log")"
awk 'NF >= 5 && $NF ~ /^[a-z_0-9]+$/ && $NF != "total" && $NF != "syscall" { print $NF }' "$TMP/syscalls" | sort -u >"$TMP/used"
if [ ! -s "$TMP/used" ]; then
	bad "strace recorded no system calls" "$(cat "$TMP/syscalls")"
else
	blocked=$(comm -23 "$TMP/used" "$TMP/effective" | tr '\n' ' ')
	if [ -z "$blocked" ]; then
		ok "all $(wc -l <"$TMP/used") system calls of serve + reload commands pass the filter"
	else
		bad "system calls the unit's filter would refuse (EPERM): $blocked"
	fi
fi
finish
