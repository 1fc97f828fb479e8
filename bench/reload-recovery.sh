#!/usr/bin/env bash
# Recovery after a hanging reload is fixed (issue 18 E6, SPEC 17: goal ≤ 3 s).
#
#   bench/reload-recovery.sh            20 rounds, each hang 5-30 s (~7-10 min)
#   bench/reload-recovery.sh --quick    2 rounds, each hang 3-5 s (~30 s)
#
# Set up in a temp dir, on 127.0.0.1 only: the release build serving one zone
# into a real NSD (reloaded through nsd-control, `verify_server` pointing at
# it, the rest of `[dns]` at its defaults: reload_timeout_secs 10,
# publish_delay_ms 100). The reload command hangs (`sleep 3600`) whenever the
# file `hang` exists, as against a stuck nameserver; an attempt that hung
# stays hung after the fix (its reload was lost) until it is killed.
#
# Each round: create `hang`, send an update (its publication hangs), wait a
# random 5-30 s (timeouts and backoff retries run meanwhile, so the fix lands
# at a random point of that cycle), remove `hang` (the fix) and at once send a
# new update; the recovery time is from the fix until NSD answers the new
# address. Prints every round, then median and max.
#
# Environment: CARGO_TARGET_DIR is honoured; DEDYN_BIN=PATH runs another
# binary (e.g. an older build, for a before/after); ROUNDS=N; SEED=N makes
# the random hangs repeatable; BENCH_KEEP=1 keeps the temp dir. Exit status 1
# when the goal (max ≤ 3 s) is missed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/sbin:/sbin"

QUICK=0
for arg in "$@"; do
  case $arg in
    --quick) QUICK=1 ;;
    -h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: bench/reload-recovery.sh [--quick]" >&2; exit 2 ;;
  esac
done
if [ $QUICK = 1 ]; then
  ROUNDS=${ROUNDS:-2} HANG_MIN=3 HANG_MAX=5
else
  ROUNDS=${ROUNDS:-20} HANG_MIN=5 HANG_MAX=30
fi
RANDOM=${SEED:-$$}
GOAL_MS=3000
# A round whose new address is not served within this long counts as this.
GIVE_UP_S=60

for cmd in nsd nsd-control dig curl; do
  command -v "$cmd" >/dev/null 2>&1 || {
    echo "bench: $cmd is missing; run tests/install-deps.sh (as root) first" >&2
    exit 1
  }
done
if [ -n "${DEDYN_BIN:-}" ]; then
  BIN=$DEDYN_BIN
else
  cargo build --release --quiet
  BIN=${CARGO_TARGET_DIR:-target}/release/dedyn-update
fi

# ---- temp dir and cleanup: everything we start is stopped by PID ----
T=$(mktemp -d /tmp/dedyn-reload-bench.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 150); do # the server takes up to reload_timeout_secs + 2 s
    local alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: temp dir kept: $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT

# shellcheck source=bench/lib.sh
. bench/lib.sh
HTTP_PORT=$(free_port) DNS_PORT=$(free_port)
now_ms() { echo $(($(date +%s%N) / 1000000)); }

cat >"$T/reload.sh" <<EOF
# written by bench/reload-recovery.sh: hang while $T/hang exists
if [ -e "$T/hang" ]; then exec sleep 3600; fi
exec "$(command -v nsd-control)" -c "$T/nsd.conf" reload "\$1"
EOF
mkdir -p "$T/zones"
CONF=$T/config.toml
cat >"$CONF" <<EOF
# written by bench/reload-recovery.sh
[server]
http_listen = ["127.0.0.1:$HTTP_PORT"]

[database]
path = "$T/db.sqlite3"

[dns]
reload_command = "sh $T/reload.sh {zone}"
verify_server = "127.0.0.1:$DNS_PORT"
reload_timeout_secs = 10

[[zone]]
name = "dedyn.example"
file = "$T/zones/dedyn.example.zone"

[rate_limit]
dyndns_per_domain = ""
failed_auth_per_ip = ""
EOF
TOKEN=$(bench_account)
dedyn zone render dedyn.example >"$T/zones/dedyn.example.zone"

# ---- NSD ----
start_nsd "$DNS_PORT" dedyn.example "$T/zones/dedyn.example.zone"

RUST_LOG=info "$BIN" --config "$CONF" serve 2>"$T/serve.log" &
PIDS+=($!)
wait_for dedyn-update 300 grep -q "serving with" "$T/serve.log"

update() { # IP: one update; insists on `good`
  local body
  body=$(curl -s --max-time 10 -H "Authorization: Token $TOKEN" \
    "http://127.0.0.1:$HTTP_PORT/?hostname=host.dedyn.example&myipv4=$1")
  if [ "$body" != good ]; then
    echo "bench: update to $1 answered '$body'; temp dir: $T" >&2
    BENCH_KEEP=1
    exit 1
  fi
}
served() { # IP: whether NSD answers it
  [ "$(dig +time=1 +tries=1 +short -p "$DNS_PORT" @127.0.0.1 host.dedyn.example A)" = "$1" ]
}

echo "reload recovery: $ROUNDS rounds, hangs of $HANG_MIN-$HANG_MAX s, binary $BIN"
times=()
for r in $(seq "$ROUNDS"); do
  : >"$T/hang"
  update "10.0.$r.1"
  hang_ms=$(((RANDOM % (HANG_MAX - HANG_MIN)) * 1000 + RANDOM % 1000 + HANG_MIN * 1000))
  sleep "$((hang_ms / 1000)).$(printf %03d $((hang_ms % 1000)))"
  rm -f "$T/hang"
  fixed=$(now_ms)
  update "10.0.$r.2"
  until served "10.0.$r.2"; do
    if [ $(($(now_ms) - fixed)) -gt $((GIVE_UP_S * 1000)) ]; then break; fi
    sleep 0.02
  done
  took=$(($(now_ms) - fixed))
  times+=("$took")
  awk -v r="$r" -v h="$hang_ms" -v t="$took" \
    'BEGIN { printf "round %2d: hang %5.1f s, fixed -> served %6.2f s\n", r, h / 1000, t / 1000 }'
done

sorted=$(printf '%s\n' "${times[@]}" | sort -n)
n=${#times[@]}
median=$(printf '%s\n' "$sorted" | awk -v n="$n" '{ a[NR] = $1 } END {
  if (n % 2) print a[(n + 1) / 2]; else print (a[n / 2] + a[n / 2 + 1]) / 2 }')
max=$(printf '%s\n' "$sorted" | tail -1)
over=$(printf '%s\n' "$sorted" | awk -v g="$GOAL_MS" '$1 > g' | wc -l)
superseded=$(grep -c "superseded" "$T/serve.log" || true)
awk -v m="$median" -v x="$max" -v o="$over" -v n="$n" -v g="$GOAL_MS" -v s="$superseded" \
  'BEGIN { printf "median %.2f s, max %.2f s, %d of %d over %d s; %d superseded attempts logged\n",
    m / 1000, x / 1000, o, n, g / 1000, s }'
if [ "$max" -gt "$GOAL_MS" ]; then
  echo "goal missed: max ≤ $((GOAL_MS / 1000)) s"
  exit 1
fi
echo "goal met: max ≤ $((GOAL_MS / 1000)) s"
