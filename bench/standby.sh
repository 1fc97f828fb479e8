#!/usr/bin/env bash
# The warm standby's bounds (SPEC 16) over many kills: `bench/standby.sh [KILLS]`
# (default 20) runs tests/it/standby/kill_and_promote.rs's kill-and-promote test (the suite runs it
# with 5) on the release build with DEDYN_STANDBY_KILLS=KILLS: each round kills
# the primary's process group (service and Litestream) with SIGKILL under 200
# changing updates a second and promotes the standby by docs/standby.md's
# recipe, file and S3 (moto) locations alternating. It prints each round and
# the summary (loss max/median, promotion, first `good` after promotion
# started) and writes them to bench/results-standby.md, which docs/standby.md
# quotes. Needs what the test needs: nsd, dig, python3 with venv, PyPI.
# Environment: CARGO_TARGET_DIR is honoured.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
KILLS=${1:-20}
case $KILLS in '' | *[!0-9]* | 0) echo "usage: bench/standby.sh [KILLS]" >&2; exit 2 ;; esac
out=$(mktemp)
trap 'rm -f "$out"' EXIT
started=$(date -u +%Y-%m-%dT%H:%MZ)
status=0
DEDYN_STANDBY_KILLS=$KILLS cargo test --release --quiet --test it \
  killing_the_primary -- --nocapture >"$out" 2>&1 || status=$?
if grep -q '^SKIPPED:' "$out"; then
  grep '^SKIPPED:' "$out" >&2
  exit 1
fi
rounds=$(grep '^round ' "$out" || true)
summary=$(grep '^standby: ' "$out" || true)
# The test checks the time bounds after the last round and names each miss.
missed=$(grep -E '^round [0-9]+: .*\(at most|^median loss' "$out" || true)
if [ -z "$summary" ]; then
  cp "$out" /tmp/standby-bench-failed.log
  grep -v '^\[' "$out" | tail -40
  echo "bench/standby.sh: the test failed before its summary; its whole output: /tmp/standby-bench-failed.log" >&2
  exit 1
fi
printf '%s\n%s\n' "$rounds" "$summary"
[ -z "$missed" ] || printf 'over a bound:\n%s\n' "$missed"
{
  echo "# Warm standby: $KILLS kills — $started"
  echo
  echo "\`bench/standby.sh $KILLS\` on $(nproc) cores, $(uname -sr); Litestream 0.5.17,"
  echo "sync-interval and monitor-interval 100 ms; 200 changing updates a second;"
  echo "even rounds replicate to a directory, odd rounds to a local S3 endpoint (moto);"
  echo "the release build. The machine is shared: the summary line gives its load average."
  echo
  echo '```'
  echo "$rounds"
  echo "$summary"
  [ -z "$missed" ] || printf 'over a bound:\n%s\n' "$missed"
  echo '```'
} >bench/results-standby.md
exit $status
