#!/usr/bin/env bash
# The seed's curl examples (shared/seed/ip-update-api.txt, "Examples") run against
# the real binary, each asserting status, body and the records stored afterwards;
# then the seed's other promises that curl can show (401, .ico, query auth, YES).
#
# Adapted only where the seed must be: https://update.dedyn.io → http://127.0.0.1:PORT,
# https://update6.dedyn.io → http://[::1]:PORT6 (the IPv6 listener), <your domain>
# → alice.dedyn.example, <1.2.3.4> → 1.2.3.4 (the seed says to drop the < >).
# curl gets `-sS -o BODY -w %{http_code}` in front so the script can see the answer.
#
# Two examples are not valid shell as printed: their URLs hold an unquoted `&`.
# Each is run twice: once pasted verbatim into bash (what a user gets: `&` sends
# curl to the background and the rest becomes a separate command), and once with
# the URL quoted, as meant. The last example also has `?` where `&` is meant
# (`?hostname=NAME?myipv4=…`): quoted and kept literally, the hostname becomes
# `NAME?myipv4=1.2.3.4`, which fails the name syntax → SPEC §4.2/§9: 400 naming
# it, nothing changed. A third run uses `&` and shows the intended update.
#
# Binary: $DEDYN_BIN, else `cargo build` and ${CARGO_TARGET_DIR:-target}/debug.
# Ports: the server listens on port 0 and we read the real ports from its log.
# Ends with "N passed, M failed"; exits non-zero if anything failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ -n "${DEDYN_BIN:-}" ]; then
  BIN=$DEDYN_BIN
else
  cargo build --quiet --bin dedyn-update
  BIN="${CARGO_TARGET_DIR:-target}/debug/dedyn-update"
fi
BIN=$(realpath "$BIN")
[ -x "$BIN" ] || { echo "seed_examples: no binary at $BIN" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dedyn-seed.XXXXXX")
PID=
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

CONF=$WORK/config.toml
cat >"$CONF" <<EOF
[server]
http_listen = ["127.0.0.1:0", "[::1]:0"]

[database]
path = "$WORK/db.sqlite3"

[dns]
publish_delay_ms = 50

[[zone]]
name = "dedyn.example"
file = "$WORK/zones/dedyn.example.zone"

[rate_limit]
dyndns_per_domain = ""
failed_auth_per_ip = ""
EOF

cli() { "$BIN" --config "$CONF" "$@"; }

RUST_LOG=info "$BIN" --config "$CONF" serve 2>"$WORK/serve.log" &
PID=$!

# Wait (bounded) for both listeners to be logged.
PORT4= PORT6=
for _ in $(seq 200); do
  PORT4=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$WORK/serve.log" | head -n1)
  PORT6=$(sed -n 's|.*listening on http://\[::1\]:\([0-9]*\).*|\1|p' "$WORK/serve.log" | head -n1)
  [ -n "$PORT4" ] && [ -n "$PORT6" ] && break
  kill -0 "$PID" 2>/dev/null || { cat "$WORK/serve.log" >&2; echo "seed_examples: server exited" >&2; exit 1; }
  sleep 0.05
done
if [ -z "$PORT4" ] || [ -z "$PORT6" ]; then
  cat "$WORK/serve.log" >&2
  echo "seed_examples: server did not start listening within 10 s" >&2
  exit 1
fi
UPDATE=127.0.0.1:$PORT4
UPDATE6=[::1]:$PORT6

DOMAIN=alice.dedyn.example
cli user add alice@example.org
cli domain add "$DOMAIN" --owner alice@example.org
TOKEN=$(cli token add --owner alice@example.org)

pass=0 fail=0
records() { cli records "$DOMAIN" | paste -sd, - | sed 's/,/, /g'; }

# A known state before each example, so that "nothing changed" is visible too.
RESET="A 192.0.2.99, AAAA fd08::99"
reset() {
  local code
  code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Token $TOKEN" \
    "http://$UPDATE/?myipv4=192.0.2.99&myipv6=fd08::99")
  [ "$code" = 200 ] && [ "$(records)" = "$RESET" ] ||
    { echo "seed_examples: reset failed ($code, $(records))" >&2; exit 1; }
}

# verdict NAME WANT_STATUS WANT_BODY WANT_RECORDS GOT_STATUS GOT_BODY
# WANT_BODY starting with ~ means "contains".
verdict() {
  local name=$1 ws=$2 wb=$3 wr=$4 gs=$5 gb=$6 gr body_ok=no
  gr=$(records)
  case $wb in
    '~'*) [[ $gb == *"${wb#\~}"* ]] && body_ok=yes ;;
    *) [ "$gb" = "$wb" ] && body_ok=yes ;;
  esac
  if [ "$gs" = "$ws" ] && [ $body_ok = yes ] && [ "$gr" = "$wr" ]; then
    pass=$((pass + 1))
    echo "ok   $name"
  else
    fail=$((fail + 1))
    echo "FAIL $name"
    echo "     status  want $ws, got $gs"
    echo "     body    want ${wb@Q}, got ${gb@Q}"
    echo "     records want ${wr@Q}, got ${gr@Q}"
  fi
}

# example NAME WANT_STATUS WANT_BODY WANT_RECORDS curl ARGS... (argv, as quoted)
example() {
  local name=$1 ws=$2 wb=$3 wr=$4 gs
  shift 5 # the word "curl"
  reset
  gs=$(curl -sS -o "$WORK/body" -w '%{http_code}' "$@") || gs="curl failed ($?)"
  verdict "$name" "$ws" "$wb" "$wr" "$gs" "$(cat "$WORK/body" 2>/dev/null)"
}

# pasted NAME WANT_STATUS WANT_BODY WANT_RECORDS 'command line as printed'
# The line goes through bash as text, in an empty dir (so `?` globs match nothing).
pasted() {
  local name=$1 ws=$2 wb=$3 wr=$4 line=$5 gs capture
  reset
  rm -f "$WORK/body"
  capture="curl -sS -o $WORK/body -w %{http_code} "
  line=${line/curl /$capture}
  mkdir -p "$WORK/empty"
  gs=$(cd "$WORK/empty" && bash -c "$line"$'\n''wait' 2>"$WORK/pasted.err") || true
  verdict "$name" "$ws" "$wb" "$wr" "$gs" "$(cat "$WORK/body" 2>/dev/null)"
}

echo "# seed examples (server on $UPDATE and $UPDATE6)"

example "seed 1: basic auth, automatic IP (IPv4)" 200 good "A 127.0.0.1" \
  curl --user "$DOMAIN:$TOKEN" "http://$UPDATE"

example "seed 2: token auth, hostname=, automatic IP (IPv4)" 200 good "A 127.0.0.1" \
  curl "http://$UPDATE/?hostname=$DOMAIN" \
  --header "Authorization: Token $TOKEN"

example "seed 3: basic auth via update6: AAAA set, A removed" 200 good "AAAA ::1" \
  curl --user "$DOMAIN:$TOKEN" "http://$UPDATE6"

example "seed 4: token auth via update6: AAAA set, A removed" 200 good "AAAA ::1" \
  curl "http://$UPDATE6/?hostname=$DOMAIN" \
  --header "Authorization: Token $TOKEN"

# As printed, `&` backgrounds curl and `myipv6=…` is a shell assignment: only
# myipv4 arrives, IPv6 falls back to the (IPv4) connection → AAAA deleted.
pasted "seed 5 pasted verbatim: only myipv4 arrives, AAAA is deleted" 200 good "A 1.2.3.4" \
  "curl --user $DOMAIN:$TOKEN \\
  http://$UPDATE/?myipv4=1.2.3.4&myipv6=fd08::1234"

example "seed 5 (URL quoted): both families" 200 good "A 1.2.3.4, AAAA fd08::1234" \
  curl --user "$DOMAIN:$TOKEN" \
  "http://$UPDATE/?myipv4=1.2.3.4&myipv6=fd08::1234"

# As printed, `&` backgrounds curl before its --header: no credentials → 401.
pasted "seed 6 pasted verbatim: sent without credentials → 401" 401 badauth "$RESET" \
  "curl http://$UPDATE6/?hostname=$DOMAIN?myipv4=1.2.3.4&myipv6=fd08::1234 \\
  --header \"Authorization: Token $TOKEN\""

example "seed 6 (URL quoted, its '?' kept): bad hostname → 400, nothing changed" \
  400 "~invalid hostname '$DOMAIN?myipv4=1.2.3.4'" "$RESET" \
  curl "http://$UPDATE6/?hostname=$DOMAIN?myipv4=1.2.3.4&myipv6=fd08::1234" \
  --header "Authorization: Token $TOKEN"

example "seed 6 as meant ('&' for '?'): both families" 200 good "A 1.2.3.4, AAAA fd08::1234" \
  curl "http://$UPDATE6/?hostname=$DOMAIN&myipv4=1.2.3.4&myipv6=fd08::1234" \
  --header "Authorization: Token $TOKEN"

echo "# other promises of the seed"

example "authentication fails → 401 badauth" 401 badauth "$RESET" \
  curl --user "$DOMAIN:wrong-token" "http://$UPDATE/?myipv4=1.2.3.4"

example "path ending in .ico → 404" 404 "~not found" "$RESET" \
  curl --user "$DOMAIN:$TOKEN" "http://$UPDATE/favicon.ico?myipv4=1.2.3.4"

example "query string method (username/password)" 200 good "A 1.2.3.4" \
  curl "http://$UPDATE/?username=$DOMAIN&password=$TOKEN&myipv4=1.2.3.4"

example "hostname=YES is ignored: the Basic username names the host" 200 good "A 1.2.3.4, AAAA fd08::1" \
  curl --user "$DOMAIN:$TOKEN" "http://$UPDATE/?hostname=YES&myip=1.2.3.4,fd08::1"

example "a hostname the user does not hold → 404 nohost" 404 nohost "$RESET" \
  curl --user "alice@example.org:$TOKEN" "http://$UPDATE/?hostname=bob.dedyn.example"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
