#!/usr/bin/env bash
# Clients that pipeline and never read (issue 18 E10, SPEC 17: goal ≤ 100 ms).
#
#   bench/flood.sh            5 runs of 60 such clients (~1-2 min)
#   bench/flood.sh --quick    1 run (~20 s)
#
# Set up in a temp dir, on 127.0.0.1 only: the release build on its built-in
# defaults ([server] workers = 4, so 32 pooled connections to tiny_http) and
# one account. Each run opens 60 keep-alive connections that send update
# requests back to back (no credentials: each is answered `401` by a worker,
# the whole way through the edge, the hop and tiny_http) and never read an
# answer. They connect with Ethernet-sized segments and small buffers, so
# the server's writes to them block within seconds, as across a real link.
# Once at least 32 of the edge's threads have been blocked writing to them
# for a second (more than there are pooled connections: before the fix each
# such write held one, and everyone else waited for the 10 s write timeout),
# another client sends 20 updates, one connection each, and each is timed
# from connect to the whole `good`. Prints each run's median and max, then
# the max over all runs.
#
# Environment: CARGO_TARGET_DIR is honoured; DEDYN_BIN=PATH runs another
# binary (e.g. an older build, for a before/after); RUNS=N; CLIENTS=N.
# Exit status 1 when the goal (every update ≤ 100 ms) is missed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

QUICK=0
for arg in "$@"; do
  case $arg in
    --quick) QUICK=1 ;;
    -h | --help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: bench/flood.sh [--quick]" >&2; exit 2 ;;
  esac
done
if [ $QUICK = 1 ]; then RUNS=${RUNS:-1}; else RUNS=${RUNS:-5}; fi
CLIENTS=${CLIENTS:-60}

if [ -n "${DEDYN_BIN:-}" ]; then
  BIN=$DEDYN_BIN
else
  cargo build --release --quiet
  BIN=${CARGO_TARGET_DIR:-target}/release/dedyn-update
fi

T=$(mktemp -d /tmp/dedyn-flood-bench.XXXXXX)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$T"
}
trap cleanup EXIT

# shellcheck source=bench/lib.sh
. bench/lib.sh
PORT=$(free_port)
CONF=$T/config.toml
cat >"$CONF" <<EOF
# written by bench/flood.sh
[server]
http_listen = ["127.0.0.1:$PORT"]

[database]
path = "$T/db.sqlite3"

[[zone]]
name = "dedyn.example"
file = "$T/dedyn.example.zone"

[rate_limit]
dyndns_per_domain = ""
failed_auth_per_ip = ""
EOF
TOKEN=$(bench_account)

RUST_LOG=warn "$BIN" --config "$CONF" serve 2>"$T/serve.log" &
SERVER_PID=$!

echo "flood: $RUNS runs of $CLIENTS pipelining clients that never read, binary $BIN"
python3 - "$PORT" "$TOKEN" "$SERVER_PID" "$RUNS" "$CLIENTS" <<'EOF'
import os, socket, statistics, sys, threading, time

port, token, pid, runs, clients = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
port = int(port)
GOAL_MS = 100.0
POOLED = 8 * 4  # pooled connections per worker × the default workers
UPDATES = 20
REQ = b"GET /nic/update?hostname=flood.dedyn.example&myipv4=192.0.2.9 HTTP/1.1\r\nHost: x\r\n\r\n"

def wait_for(what, limit, check):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    sys.exit(f"bench: {what} not within {limit} s")

def up():
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False

def blocked_writers():
    """Edge threads blocked writing to a client right now."""
    out = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{pid}/task/{t}/wchan") as f:
                wchan = f.read().strip()
        except OSError:
            continue
        if comm == "edge-conn" and wchan in ("wait_woken", "sk_stream_wait_memory"):
            out.add(t)
    return out

def pipeliner():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1460)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    return s

def flood(stop, conns):
    batch = REQ * 64
    deadline = time.monotonic() + 120  # safety net
    sent = [0] * len(conns)
    while not stop.is_set() and time.monotonic() < deadline:
        for i, c in enumerate(conns):
            if sent[i] > 100_000 * len(REQ):
                continue
            try:
                sent[i] += c.send(batch)
            except (BlockingIOError, OSError):
                pass
        time.sleep(0.005)

def update(ip):
    started = time.monotonic()
    c = socket.create_connection(("127.0.0.1", port), timeout=15)
    c.sendall((f"GET /nic/update?hostname=host.dedyn.example&myipv4={ip} HTTP/1.1\r\n"
               f"Host: x\r\nAuthorization: Token {token}\r\nConnection: close\r\n\r\n").encode())
    raw = b""
    while True:
        chunk = c.recv(4096)
        if not chunk:
            break
        raw += chunk
    c.close()
    took = (time.monotonic() - started) * 1000
    if not raw.startswith(b"HTTP/1.1 200") or not raw.endswith(b"good"):
        sys.exit(f"bench: update to {ip} answered {raw!r}")
    return took

wait_for("the server", 30, up)
worst = []
for run in range(1, runs + 1):
    conns = [pipeliner() for _ in range(clients)]
    stop = threading.Event()
    t = threading.Thread(target=flood, args=(stop, conns))
    t.start()
    # At least POOLED writes blocked for a second without a break.
    since = {}
    def held():
        now = time.monotonic()
        writing = blocked_writers()
        for tid in list(since):
            if tid not in writing:
                del since[tid]
        for tid in writing:
            since.setdefault(tid, now)
        return sum(1 for v in since.values() if now - v >= 1.0) >= POOLED
    wait_for(f"{POOLED} edge threads blocked writing", 60, held)
    blocked = len(blocked_writers())
    times = [update(f"198.51.100.{run * 20 + i}") for i in range(UPDATES)]
    stop.set()
    t.join()
    for c in conns:
        c.close()
    worst.append(max(times))
    print(f"run {run}: {blocked} writes blocked; {UPDATES} updates: "
          f"median {statistics.median(times):.1f} ms, max {max(times):.1f} ms")
    # The flood's connections are gone before the next run starts.
    wait_for("the flood's writes ended", 30, lambda: len(blocked_writers()) == 0)
print(f"max over {runs} runs: {max(worst):.1f} ms (goal ≤ {GOAL_MS:.0f} ms)")
if max(worst) > GOAL_MS:
    print("goal missed")
    sys.exit(1)
print("goal met")
EOF
