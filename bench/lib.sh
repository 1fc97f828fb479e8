# Shared by the bench scripts (sourced): loopback ports, bounded polling and a
# throwaway NSD. The caller sets T (its temp dir) and PIDS (an array of what
# it started, stopped by PID in its cleanup).

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for WHAT TRIES CMD...: poll every 0.1 s (at most TRIES times) until CMD
# succeeds; else say what did not come up, keep the temp dir and exit 1.
wait_for() {
  local what=$1 tries=$2
  shift 2
  for _ in $(seq "$tries"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "bench: $what did not come up; temp dir: $T" >&2
  BENCH_KEEP=1
  exit 1
}

# start_nsd PORT ZONE ZONEFILE: NSD on 127.0.0.1:PORT serving ZONE from
# ZONEFILE, configured as tests/it/common/ns.rs does (loopback, no privilege
# drop, control socket $T/nsd.ctl, config $T/nsd.conf); waits until it answers.
start_nsd() {
  local port=$1 zone=$2 file=$3
  cat >"$T/nsd.conf" <<NSD
server:
  ip-address: 127.0.0.1
  port: $port
  do-ip4: yes
  do-ip6: no
  username: ""
  chroot: ""
  zonesdir: "$T"
  database: ""
  pidfile: "$T/nsd.pid"
  xfrdfile: "$T/xfrd.state"
  zonelistfile: "$T/zone.list"
  xfrdir: "$T"
  logfile: "$T/nsd.log"
  server-count: 1
  hide-version: yes
remote-control:
  control-enable: yes
  control-interface: "$T/nsd.ctl"
zone:
  name: $zone
  zonefile: "$file"
NSD
  nsd -d -c "$T/nsd.conf" >"$T/nsd.out" 2>&1 &
  PIDS+=($!)
  wait_for NSD 300 sh -c "dig +time=1 +tries=1 +short -p $port @127.0.0.1 $zone SOA | grep -q ."
}

# The service's CLI on the bench's config ($BIN, $CONF), quiet.
dedyn() { RUST_LOG=warn "$BIN" --config "$CONF" "$@"; }

# One user, bench@example.org, with one name, host.dedyn.example; prints a new
# token for it.
bench_account() {
  dedyn user add bench@example.org >/dev/null
  dedyn domain add host.dedyn.example --owner bench@example.org >/dev/null
  dedyn token add --owner bench@example.org
}
