#!/usr/bin/env bash
# The benchmark: `bench/run.sh` (full, ~10 min), `bench/run.sh --quick` (~1 min,
# run by tests/run.sh), `bench/run.sh --accounts` (S1 and S4 over account sizes
# only, ~5 min) or `BENCH_BASELINE=BIN bench/run.sh --ab` (S1 and S2 of an older
# build BIN against this one, alternating in one run, then each build's
# instructions per S1 request under valgrind; ~6 min; writes
# bench/results-ab.md). Everything runs on this machine, on 127.0.0.1 only, and is
# stopped by PID when the script exits. Prints one Markdown table and writes it to
# bench/results.md (full; plus a dated copy), bench/results-quick.md (--quick) or
# bench/results-accounts.md (--accounts).
#
# What it sets up, in a temp dir: N registered names with tokens (`dedyn-update
# import`), the release build serving them as deployed (`serve`, the public edge in
# front), NSD serving the zone (reloaded by the server through nsd-control over a
# unix socket, config as in tests/it/common/ns.rs), and nginx returning a fixed
# `200 good` on HTTP and HTTPS (same ECDSA P-256 certificate) as the reference.
#
# Scenarios (wrk, bench/update.lua; 64 connections; median of the repetitions):
#   S1 unchanged: Basic-auth updates that set the address already stored (no write)
#   S2 changing:  every request sets a new IPv4 for a random name (a write each)
#   S3 TLS:       HTTPS, `Connection: close` (a handshake per request)
#   S4 account:   as S1, but every name belongs to ONE account with one token
#                 (100,000 names; --quick 10,000), and a variant whose token is
#                 limited with `--domain` to 1,000 of them; target: ≥ 90 % of S1
#   S5 DNS UPDATE: signed UPDATEs (TSIG), each a new IPv4 for a random name of
#                 S4's account (a write each), from 16 clients with one message
#                 outstanding each (bench/dns_load: examples/dns_load.rs), over
#                 UDP and over TCP (one connection per client, reused); target:
#                 UDP ≥ 100 % of S2's req/s, p99 ≤ 10 ms
#   propagation:  200 changing updates/s; per sampled update, `good` → NSD answers
#   render:       zone render + atomic write (examples/render_bench.rs)
#   footprint:    VmRSS idle, VmHWM under S2, stripped binary, start → first answer
# Targets are ratios against nginx measured in the same run, except footprint.
#
# Environment: CARGO_TARGET_DIR is honoured; BENCH_WORKERS=N skips the worker
# sweep; BENCH_SECONDS / BENCH_REPS override the duration and repetitions;
# BENCH_ACCOUNTS="10 100 …" sets the S4 account sizes (the largest gets the
# --domain variant); BENCH_INSTR=0 skips --ab's instruction count,
# BENCH_INSTR_SECONDS / BENCH_INSTR_REPS set its run length (15) and
# repetitions (2); BENCH_KEEP=1 keeps the temp dir (logs, configs) afterwards.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
export PATH="$PATH:/usr/sbin:/sbin"

QUICK=0 ONLY_ACCOUNTS=0 AB=0
for arg in "$@"; do
  case $arg in
    --quick) QUICK=1 ;;
    --accounts) ONLY_ACCOUNTS=1 ;;
    --ab) AB=1 ;;
    -h | --help) sed -n '2,40p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: bench/run.sh [--quick | --accounts | --ab]" >&2; exit 2 ;;
  esac
done
if [ $AB = 1 ] && [ ! -x "${BENCH_BASELINE:-}" ]; then
  echo "bench: --ab needs BENCH_BASELINE=/path/to/an/older/dedyn-update" >&2
  exit 2
fi

if [ $QUICK = 1 ]; then
  NAMES=10000 SECS=${BENCH_SECONDS:-3} REPS=${BENCH_REPS:-1}
  RENDER_SIZES="100000" SWEEP="" PROP_SECS=4 PROP_EVERY=3
  ACCOUNTS=${BENCH_ACCOUNTS:-10000}
  OUT=bench/results-quick.md
elif [ $AB = 1 ]; then
  # Before/after one change: S1 and S2 only, the two builds alternating per
  # repetition (each on its own copy of the same primed database).
  NAMES=10000 SECS=${BENCH_SECONDS:-5} REPS=${BENCH_REPS:-5} SWEEP=""
  ACCOUNTS=10
  OUT=bench/results-ab.md
elif [ $ONLY_ACCOUNTS = 1 ]; then
  # S1 against S4 over several account sizes (issue: per-request cost must not
  # grow with the account); nothing else runs.
  NAMES=10000 SECS=${BENCH_SECONDS:-5} REPS=${BENCH_REPS:-3} SWEEP=""
  ACCOUNTS=${BENCH_ACCOUNTS:-10 100 1000 2000 100000}
  OUT=bench/results-accounts.md
else
  NAMES=100000 SECS=${BENCH_SECONDS:-10} REPS=${BENCH_REPS:-3}
  RENDER_SIZES="100000 1000000" SWEEP="2 4 8" PROP_SECS=10 PROP_EVERY=4
  ACCOUNTS=${BENCH_ACCOUNTS:-100000}
  OUT=bench/results.md
fi
# The --domain variant: the largest account's token limited to this many names.
DOMAIN_LIMITED=1000
if [ -n "${BENCH_WORKERS:-}" ]; then SWEEP=""; fi
WORKERS=${BENCH_WORKERS:-4}
CONNS=64
WRK_THREADS=$(nproc)
if [ "$WRK_THREADS" -gt 4 ]; then WRK_THREADS=4; fi
started=$SECONDS
say() { echo "bench [$((SECONDS - started)) s] $*" >&2; }

# ---- dependencies (as tests/install-deps.sh: apt when root, else say what is missing) ----
missing=()
for cmd in wrk nginx nsd nsd-control openssl curl dig python3 strip; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
if [ ${#missing[@]} -ne 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    say "installing what is missing: ${missing[*]}"
    bash tests/install-deps.sh >&2
  else
    echo "bench: missing ${missing[*]}; run tests/install-deps.sh as root" >&2
    exit 1
  fi
fi
# --ab counts instructions under valgrind (not needed by the test suite).
if [ $AB = 1 ] && [ "${BENCH_INSTR:-1}" = 1 ] && ! command -v valgrind >/dev/null 2>&1 &&
  [ "$(id -u)" -eq 0 ]; then
  say "installing valgrind"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind >&2 || true
fi

# ---- build ----
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
say "cargo build --release"
cargo build --release --quiet --bin dedyn-update --example render_bench --example dns_load
BIN=$TARGET/release/dedyn-update
RENDER=$TARGET/release/examples/render_bench
DNSLOAD=$TARGET/release/examples/dns_load
NEW_BIN=$BIN
# --ab: the older build sets up and primes the database (its schema), and the
# newer one migrates a copy of it.
if [ $AB = 1 ]; then BIN=$BENCH_BASELINE; fi
DB=

# ---- temp dir and cleanup: everything we start is stopped by PID ----
T=$(mktemp -d /tmp/dedyn-bench.XXXXXX)
PIDS=()
SRV_PID=""
cleanup() {
  local pid
  for pid in ${SRV_PID:-} "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for _ in $(seq 50); do
    local alive=0
    for pid in ${SRV_PID:-} "${PIDS[@]}"; do
      if kill -0 "$pid" 2>/dev/null; then alive=1; fi
    done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for pid in ${SRV_PID:-} "${PIDS[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then
    echo "bench: temp dir kept: $T" >&2
  else
    rm -rf "$T"
  fi
}
trap cleanup EXIT

RES=$T/results.txt
: >"$RES"
record() { echo "$*" >>"$RES"; }

# shellcheck source=bench/lib.sh
. bench/lib.sh
HTTP_PORT=$(free_port) HTTPS_PORT=$(free_port) NGX_PORT=$(free_port) NGX_TLS_PORT=$(free_port)
DNS_PORT=$(free_port) UPD_PORT=$(free_port)

# ---- certificate: self-signed ECDSA P-256, for us and nginx alike ----
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$T/key.pem" -out "$T/cert.pem" 2>/dev/null

# ---- our config ----
mkdir -p "$T/zones"
CONF=$T/config.toml
# S5: DNS UPDATE with a TSIG key (not for --ab: an older build may not know it).
DNS_UPDATE_SECTION="# S5: DNS UPDATE with a TSIG key.
[dns_update]
listen = [\"127.0.0.1:$UPD_PORT\"]
"
if [ "$AB" = 1 ]; then DNS_UPDATE_SECTION=""; fi
write_config() {
  cat >"$CONF" <<EOF
# written by bench/run.sh
[server]
http_listen = ["127.0.0.1:$HTTP_PORT"]
https_listen = ["127.0.0.1:$HTTPS_PORT"]
tls_cert = "$T/cert.pem"
tls_key = "$T/key.pem"
workers = $1

[database]
path = "${DB:-$T/db.sqlite3}"

[dns]
reload_command = "$(command -v nsd-control) -c $T/nsd.conf reload {zone}"
# As the README recommends: pace publications to what NSD has loaded.
verify_server = "127.0.0.1:$DNS_PORT"

$DNS_UPDATE_SECTION
[[zone]]
name = "dedyn.example"
file = "$T/zones/dedyn.example.zone"

[rate_limit]
dyndns_per_domain = ""
failed_auth_per_ip = ""

# S4 is one account with many names: no bound on an account's domains here.
[limits]
domains_per_user = 0
EOF
}
write_config "$WORKERS"

# ---- data: N users, each with one name and one token, through `import` ----
say "importing $NAMES names with tokens"
awk -v n="$NAMES" 'BEGIN { for (i = 0; i < n; i++) {
  printf "user add u%d@bench.example\ndomain add h%d.dedyn.example --owner u%d@bench.example\ntoken add --owner u%d@bench.example\n", i, i, i, i } }' >"$T/import.txt"
awk -v n="$NAMES" 'BEGIN { for (i = 0; i < n; i++) printf "h%d.dedyn.example\n", i }' >"$T/names.txt"
t0=$(date +%s%N)
dedyn import <"$T/import.txt" >"$T/secrets.txt"
record "import ms=$(( ($(date +%s%N) - t0) / 1000000 ))"
python3 bench/bench.py creds "$T/names.txt" "$T/secrets.txt" "$T/creds.tsv"

# ---- data for S4: per size N one account aN with N names nJ.aN and one token; the
# largest account also gets a token limited with --domain to its first names ----
LARGEST=0
for n in $ACCOUNTS; do if [ "$n" -gt "$LARGEST" ]; then LARGEST=$n; fi; done
LIMITED=$DOMAIN_LIMITED
if [ "$LIMITED" -gt "$LARGEST" ]; then LIMITED=$LARGEST; fi
: >"$T/accounts.txt"
for n in $ACCOUNTS; do
  awk -v n="$n" 'BEGIN { printf "user add a%d@bench.example\n", n
    for (j = 0; j < n; j++) printf "domain add n%d.a%d.dedyn.example --owner a%d@bench.example\n", j, n, n
    printf "token add --owner a%d@bench.example\n", n }' >>"$T/accounts.txt"
done
awk -v n="$LARGEST" -v k="$LIMITED" 'BEGIN { printf "token add --owner a%d@bench.example", n
  for (j = 0; j < k; j++) printf " --domain n%d.a%d.dedyn.example", j, n
  printf "\n" }' >>"$T/accounts.txt"
t0=$(date +%s%N)
dedyn import <"$T/accounts.txt" >"$T/account-secrets.txt"
S4_TOTAL=0
for n in $ACCOUNTS; do S4_TOTAL=$((S4_TOTAL + n)); done
record "import_accounts ms=$(( ($(date +%s%N) - t0) / 1000000 )) names=$S4_TOTAL"
# creds: account N's names with its one secret; the variant's names with its own.
account_creds() { # N SECRET COUNT OUT
  awk -v n="$1" -v k="$3" 'BEGIN { for (j = 0; j < k; j++) printf "n%d.a%d.dedyn.example\n", j, n }' >"$T/an.txt"
  awk -v s="$2" -v k="$3" 'BEGIN { for (j = 0; j < k; j++) print s }' >"$T/as.txt"
  python3 bench/bench.py creds "$T/an.txt" "$T/as.txt" "$4"
}
i=0
for n in $ACCOUNTS; do
  i=$((i + 1))
  account_creds "$n" "$(sed -n "${i}p" "$T/account-secrets.txt")" "$n" "$T/creds-a$n.tsv"
done
account_creds "$LARGEST" "$(sed -n "$((i + 1))p" "$T/account-secrets.txt")" "$LIMITED" "$T/creds-limited.tsv"
# S5: a TSIG key of the largest account, for all of its names (not for --ab).
if [ "$AB" = 0 ]; then
  dedyn token add --owner "a$LARGEST@bench.example" --tsig --key-name s5.bench.example >"$T/s5.key"
  cut -f1 "$T/creds-a$LARGEST.tsv" >"$T/s5-names.txt"
fi
dedyn zone render dedyn.example >"$T/zones/dedyn.example.zone"

# ---- NSD ----
start_nsd "$DNS_PORT" dedyn.example "$T/zones/dedyn.example.zone"

# ---- nginx: the reference ceiling, a fixed `200 good` ----
mkdir -p "$T/ngx/logs"
NGX_USER=""
if [ "$(id -u)" -eq 0 ]; then NGX_USER="user root;"; fi
cat >"$T/ngx/nginx.conf" <<EOF
$NGX_USER
worker_processes auto;
pid $T/ngx/nginx.pid;
error_log $T/ngx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $T/ngx/body;
  proxy_temp_path $T/ngx/proxy;
  fastcgi_temp_path $T/ngx/fastcgi;
  uwsgi_temp_path $T/ngx/uwsgi;
  scgi_temp_path $T/ngx/scgi;
  keepalive_requests 100000000;
  default_type text/plain;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache off;
  ssl_session_tickets off;
  server {
    listen 127.0.0.1:$NGX_PORT;
    listen 127.0.0.1:$NGX_TLS_PORT ssl;
    ssl_certificate $T/cert.pem;
    ssl_certificate_key $T/key.pem;
    location / { return 200 "good"; }
  }
}
EOF
nginx -p "$T/ngx" -c "$T/ngx/nginx.conf" -e "$T/ngx/logs/error.log" -g 'daemon off;' \
  >"$T/ngx/out.log" 2>&1 &
PIDS+=($!)
wait_for nginx 100 curl -sf "http://127.0.0.1:$NGX_PORT/"

# ---- our server ----
# UNDER: a command the server runs under (--ab's instruction count: valgrind).
UNDER=() START_TIMEOUT=30
start_server() { # WORKERS [KEY]: start, time to first answer (recorded under KEY)
  write_config "$1"
  : >"$T/startup.out"
  # bench.py starts the server, prints `pid=… ms=…` and stays its parent (reaper).
  python3 bench/bench.py startup --timeout "$START_TIMEOUT" "$T/serve.log" "$HTTP_PORT" -- \
    env RUST_LOG=warn "${UNDER[@]}" "$BIN" --config "$CONF" serve >"$T/startup.out" &
  STARTER_PID=$!
  PIDS+=("$STARTER_PID")
  local out=""
  for _ in $(seq 600); do # bounded: 60 s
    out=$(cat "$T/startup.out")
    [ -n "$out" ] && break
    kill -0 "$STARTER_PID" 2>/dev/null || break
    sleep 0.1
  done
  case $out in
    pid=*) ;;
    *) echo "bench: the server did not start; see $T/serve.log" >&2; BENCH_KEEP=1; exit 1 ;;
  esac
  SRV_PID=${out#pid=}
  SRV_PID=${SRV_PID%% *}
  if [ -n "${2:-}" ]; then record "$2 ${out#pid=* }"; fi
}
stop_server() {
  [ -n "$SRV_PID" ] || return 0
  kill -TERM "$SRV_PID" 2>/dev/null || true
  for _ in $(seq 200); do # bounded: 20 s, then SIGKILL
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$SRV_PID" 2>/dev/null || true
  wait "$STARTER_PID" 2>/dev/null || true
  SRV_PID=""
}
status_kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$SRV_PID/status"; }

# Context switches of every thread of the server so far (voluntary: a thread went
# to sleep waiting for a socket, a lock or the queue, and was woken again).
server_cpu_ticks() { # utime + stime of the whole server process, in clock ticks
  awk '{ print $14 + $15 }' "/proc/$SRV_PID/stat" 2>/dev/null || echo 0
}
server_switches() { # FIELD: voluntary_ctxt_switches or nonvoluntary_ctxt_switches
  cat "/proc/$SRV_PID"/task/*/status 2>/dev/null | awk -v k="$1:" '$1 == k { n += $2 } END { print n + 0 }'
}

# wrk run: KEY URL MODE [SECONDS [CREDS]]; appends `KEY requests=… rps=… p99_ms=…`, and
# for our server the thread wake-ups per request (`vcs_per_req`; threads that
# ended during the run are not counted, which only matters for `close`) and the
# server's CPU time per request (`cpu_us_per_req`: on a machine shared with the
# load generator it varies far less from run to run than req/s does).
run_wrk() {
  local key=$1 url=$2 mode=$3 secs=${4:-$SECS} creds=${5:-$T/creds.tsv} out vcs0="" cpu0=""
  if [[ $key == *_ours || $key == *_before || $key == *_after ]] && [ -n "$SRV_PID" ]; then
    vcs0=$(server_switches voluntary_ctxt_switches)
    cpu0=$(server_cpu_ticks)
  fi
  out=$(wrk -t"$WRK_THREADS" -c"$CONNS" -d"${secs}s" --timeout 5s -s bench/update.lua \
    "$url" -- "$mode" "$creds" "$WRK_THREADS" 2>&1) || {
    echo "$out" >&2
    return 1
  }
  local line
  line=$(grep '^RESULT ' <<<"$out" || true)
  if [ -z "$line" ]; then
    echo "bench: wrk printed no RESULT line for $key:" >&2
    echo "$out" >&2
    return 1
  fi
  if [ -n "$vcs0" ]; then
    local vcs=$(($(server_switches voluntary_ctxt_switches) - vcs0)) reqs
    reqs=$(sed 's/.*requests=\([0-9]*\).*/\1/' <<<"$line")
    line="$line vcs_per_req=$(awk -v v="$vcs" -v r="$reqs" 'BEGIN { printf "%.2f", (r > 0 ? v / r : 0) }')"
    local ticks=$(($(server_cpu_ticks) - cpu0)) hz
    hz=$(getconf CLK_TCK)
    line="$line cpu_us_per_req=$(awk -v t="$ticks" -v hz="$hz" -v r="$reqs" 'BEGIN { printf "%.1f", (r > 0 ? t * 1e6 / hz / r : 0) }')"
  fi
  record "$key ${line#RESULT }"
  say "$key ${line#RESULT }"
}
OURS=http://127.0.0.1:$HTTP_PORT
REF=http://127.0.0.1:$NGX_PORT

# ---- prime: every name gets its fixed address once (S1 and S4 then write nothing) ----
prime() { # CREDS TOTAL: send each name of CREDS its address until `check` counts TOTAL records
  wrk -t"$WRK_THREADS" -c"$CONNS" -d600s --timeout 5s -s bench/update.lua "$OURS" \
    -- prime "$1" "$WRK_THREADS" >"$T/prime.out" 2>&1 &
  WRK_PID=$!
  PIDS+=($WRK_PID)
  local got
  for _ in $(seq 1200); do # bounded: 600 s
    got=$(dedyn check 2>/dev/null | awk '/records$/ { print $(NF-1) }')
    if [ "${got:-0}" -ge "$2" ]; then break; fi
    kill -0 "$WRK_PID" 2>/dev/null || break
    sleep 0.5
  done
  kill -INT "$WRK_PID" 2>/dev/null || true
  wait "$WRK_PID" || true
  got=$(dedyn check | awk '/records$/ { print $(NF-1) }')
  if [ "${got:-0}" -lt "$2" ]; then
    echo "bench: priming set only ${got:-0} of $2 records; see $T/prime.out" >&2
    BENCH_KEEP=1
    exit 1
  fi
}
start_server "$WORKERS"
say "priming $NAMES addresses"
prime "$T/creds.tsv" "$NAMES"
total=$NAMES
for n in $ACCOUNTS; do
  total=$((total + n))
  say "priming account a$n ($n names)"
  t0=$(date +%s%N)
  prime "$T/creds-a$n.tsv" "$total"
  record "prime_a$n ms=$(( ($(date +%s%N) - t0) / 1000000 ))"
done
stop_server

# ---- --ab: S1 then S2, before (BENCH_BASELINE) and after (this build) alternating ----
if [ $AB = 1 ]; then
  BASE_BIN=$BIN
  for f in "" -wal -shm; do
    if [ -e "$T/db.sqlite3$f" ]; then cp "$T/db.sqlite3$f" "$T/db-after.sqlite3$f"; fi
  done
  ab_run() { # KEY MODE: one run of each build
    BIN=$BASE_BIN DB=$T/db.sqlite3
    start_server "$WORKERS"
    run_wrk "$1_before" "$OURS" "$2"
    stop_server
    BIN=$NEW_BIN DB=$T/db-after.sqlite3
    start_server "$WORKERS"
    run_wrk "$1_after" "$OURS" "$2"
    stop_server
  }
  for rep in $(seq "$REPS"); do ab_run s1 unchanged; done
  # The instructions each build executes per S1 request, counted by valgrind
  # (callgrind, user space, every thread): unlike time, this does not move with
  # the machine's other load, so it shows a change of a few per cent that the
  # runs above cannot. Counted before S2: S2's changes would leave the newer
  # build's events thread a backlog of history to index at its next start.
  # Skipped (and said) without valgrind; BENCH_INSTR=0 skips.
  if [ "${BENCH_INSTR:-1}" = 1 ] && command -v valgrind >/dev/null && command -v callgrind_control >/dev/null; then
    instr_run() { # KEY: one S1 run of $BIN under callgrind
      UNDER=(valgrind --tool=callgrind --callgrind-out-file="$T/callgrind.$1.%p")
      START_TIMEOUT=300
      rm -f "$T/callgrind.$1".*
      start_server "$WORKERS"
      UNDER=() START_TIMEOUT=30
      # Wait (bounded: 120 s) until the start-up work (the first publication)
      # is done: the server's CPU time stops growing for a second.
      local last=-1 now settled=0
      for _ in $(seq 120); do
        now=$(server_cpu_ticks)
        if [ $((now - last)) -le 5 ]; then settled=1; break; fi
        last=$now
        sleep 1
      done
      if [ $settled = 0 ]; then say "$1: still busy after 120 s of start-up; counting anyway"; fi
      callgrind_control -z "$SRV_PID" >/dev/null
      local out line reqs ir
      out=$(wrk -t"$WRK_THREADS" -c"$CONNS" -d"${BENCH_INSTR_SECONDS:-15}s" --timeout 10s \
        -s bench/update.lua "$OURS" -- unchanged "$T/creds.tsv" "$WRK_THREADS" 2>&1) || true
      callgrind_control -d "$SRV_PID" >/dev/null
      line=$(grep '^RESULT ' <<<"$out" || true)
      reqs=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$line")
      ir=$(awk '$1 == "summary:" || $1 == "totals:" { print $2; exit }' "$T/callgrind.$1".*.1 2>/dev/null || true)
      stop_server
      if [ -n "$reqs" ] && [ "$reqs" -gt 0 ] && [ -n "$ir" ]; then
        record "$1 requests=$reqs instr_per_req=$((ir / reqs))"
        say "$1 requests=$reqs instr_per_req=$((ir / reqs))"
      else
        say "$1: no instruction count (see $T/serve.log)"
      fi
    }
    for rep in $(seq "${BENCH_INSTR_REPS:-2}"); do
      BIN=$BASE_BIN DB=$T/db.sqlite3 instr_run s1_instr_before
      BIN=$NEW_BIN DB=$T/db-after.sqlite3 instr_run s1_instr_after
    done
  else
    say "no valgrind (or BENCH_INSTR=0): instructions per request not counted"
  fi
  for rep in $(seq "$REPS"); do ab_run s2 changing; done
  python3 bench/bench.py ab "$RES" "$OUT" "before: $(basename "$(dirname "$(dirname "$BASE_BIN")")")" \
    "seconds=$SECS reps=$REPS names=$NAMES workers=$WORKERS date=$(date -u +%Y-%m-%dT%H:%MZ) host=$(nproc)_cores"
  say "done: $OUT"
  exit 0
fi

# ---- worker sweep (full run): one S1 and one S2 run per pool size ----
# Shown for information only: the scenarios below run the default pool size
# (or BENCH_WORKERS), as deployed. On this noisy 2-core VM one 10 s run per size
# does not pick a winner reliably, and a larger pool costs memory (RSS target).
if [ -n "$SWEEP" ]; then
  for w in $SWEEP; do
    start_server "$w"
    run_wrk "sweep_w${w}_s1" "$OURS" unchanged
    run_wrk "sweep_w${w}_s2" "$OURS" changing
    stop_server
  done
fi

# ---- start-up time and idle RSS: fresh starts with all names and records ----
if [ $ONLY_ACCOUNTS = 1 ]; then
  start_server "$WORKERS"
else
  for rep in $(seq "$REPS"); do
    start_server "$WORKERS" startup
    sleep 2 # the start-up publication and the first poll are done: idle
    record "rss_idle kb=$(status_kb VmRSS)"
    if [ "$rep" -lt "$REPS" ]; then stop_server; fi
  done
fi

# ---- S1, S4, S2: ours and nginx, interleaved per repetition ----
for rep in $(seq "$REPS"); do
  run_wrk s1_ours "$OURS" unchanged
  run_wrk s1_ref "$REF" unchanged
  for n in $ACCOUNTS; do
    run_wrk "s4_a$n" "$OURS" unchanged "$SECS" "$T/creds-a$n.tsv"
  done
  run_wrk s4_limited "$OURS" unchanged "$SECS" "$T/creds-limited.tsv"
done
if [ $ONLY_ACCOUNTS = 1 ]; then
  stop_server
  record "meta quick=0 accounts=1 names=$NAMES s4=$(echo $ACCOUNTS | tr ' ' ,) limited=$LIMITED seconds=$SECS reps=$REPS workers=$WORKERS wrk_threads=$WRK_THREADS date=$(date -u +%Y-%m-%dT%H:%MZ) nginx=$(nginx -v 2>&1 | sed 's/.*nginx\///') host=$(nproc)_cores_$(uname -m)_Linux_$(uname -r | cut -d- -f1)"
  python3 bench/bench.py report "$RES" "$OUT"
  say "done: $OUT"
  exit 0
fi
echo 5 >"/proc/$SRV_PID/clear_refs" # reset VmHWM: the peak below is S2's alone
for rep in $(seq "$REPS"); do
  run_wrk s2_ours "$OURS" changing
  run_wrk s2_ref "$REF" changing
done
record "rss_peak kb=$(status_kb VmHWM)"

# ---- S5: signed DNS UPDATEs, UDP and TCP, a write each ----
run_dns() { # KEY TRANSPORT: appends `KEY requests=… rps=… p99_ms=…`
  local out line
  out=$("$DNSLOAD" --server "127.0.0.1:$UPD_PORT" --transport "$2" --key "$T/s5.key" \
    --names "$T/s5-names.txt" --zone dedyn.example --seconds "$SECS" --clients 16 2>&1) || {
    echo "$out" >&2
    return 1
  }
  line=$(grep '^RESULT ' <<<"$out" || true)
  if [ -z "$line" ]; then
    echo "bench: dns_load printed no RESULT line for $1:" >&2
    echo "$out" >&2
    return 1
  fi
  record "$1 ${line#RESULT }"
  say "$1 ${line#RESULT }"
}
for rep in $(seq "$REPS"); do
  run_dns s5_udp udp
  run_dns s5_tcp tcp
done

# ---- propagation: steady 200 changing updates/s, good → NSD answers ----
say "propagation: 200 updates/s for $PROP_SECS s, 1 in $PROP_EVERY sampled"
sleep 1
line=$(python3 bench/bench.py propagation --http "$HTTP_PORT" --dns "$DNS_PORT" \
  --creds "$T/creds.tsv" --rate 200 --seconds "$PROP_SECS" --sample-every "$PROP_EVERY" |
  grep '^RESULT ' || true)
record "prop ${line#RESULT }"
say "prop ${line#RESULT }"

# ---- S3: HTTPS, a new connection per request ----
if curl -sk --max-time 3 -o /dev/null "https://127.0.0.1:$HTTPS_PORT/"; then
  for rep in $(seq "$REPS"); do
    run_wrk s3_ours "https://127.0.0.1:$HTTPS_PORT" close
    run_wrk s3_ref "https://127.0.0.1:$NGX_TLS_PORT" close
  done
else
  say "S3: no answer on the HTTPS listener: n/a"
  record "s3_na why=no_HTTPS_listener"
  run_wrk s3_ref "https://127.0.0.1:$NGX_TLS_PORT" close
fi
stop_server

# ---- zone rendering ----
# shellcheck disable=SC2086
"$RENDER" "$T" $RENDER_SIZES | while read -r names rest; do
  record "render_${names#names=} $rest"
done

# ---- binary ----
cp "$BIN" "$T/bin-stripped"
strip "$T/bin-stripped"
record "binary bytes=$(stat -c %s "$T/bin-stripped")"

# ---- report ----
record "meta quick=$QUICK names=$NAMES s4=$(echo $ACCOUNTS | tr ' ' ,) limited=$LIMITED seconds=$SECS reps=$REPS workers=$WORKERS wrk_threads=$WRK_THREADS date=$(date -u +%Y-%m-%dT%H:%MZ) nginx=$(nginx -v 2>&1 | sed 's/.*nginx\///') host=$(nproc)_cores_$(uname -m)_Linux_$(uname -r | cut -d- -f1)"
python3 bench/bench.py report "$RES" "$OUT"
if [ $QUICK = 0 ]; then cp "$OUT" "bench/results-$(date -u +%Y-%m-%d).md"; fi
say "done: $OUT"
