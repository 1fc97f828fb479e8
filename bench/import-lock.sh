#!/usr/bin/env bash
# How long `import` holds the database's write lock (SPEC 13 goal: 100,000 lines
# ≤ 1 s): `bench/import-lock.sh [LINES]` (default 100000) builds the release
# binary, imports LINES lines — users, each with a domain and a token — into a
# fresh database in a temp dir, and prints the import's own log line
# `import: N lines, write lock held X ms` and the whole command's wall time.
# Environment: CARGO_TARGET_DIR is honoured.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
LINES=${1:-100000}
case $LINES in '' | *[!0-9]*) echo "usage: bench/import-lock.sh [LINES]" >&2; exit 2 ;; esac
cargo build --release --quiet --bin dedyn-update
BIN=${CARGO_TARGET_DIR:-target}/release/dedyn-update
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
printf '[database]\npath = "%s/db.sqlite3"\n' "$dir" >"$dir/config.toml"
python3 - "$LINES" >"$dir/input" <<'PY'
import sys
n = int(sys.argv[1])
out, i = [], 0
while len(out) < n:
    out.append(f"user add u{i}@example.org")
    out.append(f"domain add h{i}.dedyn.example --owner u{i}@example.org")
    out.append(f"token add --owner u{i}@example.org")
    i += 1
print("\n".join(out[:n]))
PY
start=$(date +%s%N)
RUST_LOG=info "$BIN" --config "$dir/config.toml" import <"$dir/input" 2>"$dir/log" >/dev/null
end=$(date +%s%N)
grep -o 'import: .*' "$dir/log"
echo "whole command: $(((end - start) / 1000000)) ms"
