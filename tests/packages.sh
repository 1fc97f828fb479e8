#!/usr/bin/env bash
# The .deb packages (SPEC 11): builds them for amd64, arm64 and armhf and tests the
# amd64 one with dpkg on this machine.
#
#   tests/packages.sh --build-only   build the three packages into $TARGET/debian/
#                                    (any user; what the README tells you to run)
#   tests/packages.sh                the above, then install / upgrade / remove /
#                                    purge the amd64 package here (root, or sudo -n)
#
# Build: release binaries, the foreign ones cross-compiled with Debian's cross
# toolchains (linkers and C compilers for ring and the bundled SQLite set here, in
# the environment of this script only). Before packing, every binary answers the
# seed's examples (tests/seed_examples.sh) as a real server; arm64 and armhf run
# under qemu-user-static, through a wrapper passed as DEDYN_BIN. Packing: cargo-deb,
# settings in Cargo.toml [package.metadata.deb], maintainer scripts and the
# packaged config in data/deb/.
#
# dpkg test: apt installs the package (the README's command), then: files, conffile,
# system user, state directory, nothing started. Then the README's three steps as
# written: its [[zone]] in place of the packaged one, its `nameserver nsd | sh -e`
# and `systemctl enable --now` (real NSD on port 53 from Debian's stock config), its
# admin block (user, domain, token, curl, check, status until NSD serves the update),
# and `dig` asking NSD; the time from `apt install` to that answer is printed. Then
# an upgrade to a newer build keeps the database and an edited config; remove keeps
# both; purge removes the config and keeps the non-empty state directory; a purge
# right after an install leaves nothing.
#
# The README's systemctl commands run tests/no-systemd/systemctl (CI is a container
# without systemd, and a test must not restart a machine's own services): it starts
# the units' ExecStart= as their User=, groups (drop-ins included), UMask= and
# WorkingDirectory= say. The only other
# change to the README's blocks: the HTTP port (127.0.0.1:0 instead of :8080, which
# may be taken), the package's version and architecture.
#
# Leaves the machine as it found it: refuses to start when dedyn-update is installed,
# when /etc/dedyn-update, /var/lib/dedyn-update or what the NSD script writes exist
# (an operator's, not ours to touch), or when NSD runs or port 53 is taken; at the
# end stops what it started, deletes what the NSD script wrote (group membership
# included), purges the package, deletes /var/lib/dedyn-update and deletes the user
# dedyn-update if this run created it (a user that existed before is kept).
#
# Needs (tests/install-deps.sh installs them): gcc-aarch64-linux-gnu,
# gcc-arm-linux-gnueabihf, qemu-user-static, dpkg-dev, curl; rustup targets and
# cargo-deb are added here when missing (as the user whose toolchain builds).
# Prints the time of each phase and ends with "N passed, M failed".
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$TARGET/debian

build_only=no
for arg in "$@"; do
  case $arg in
    --build-only) build_only=yes ;;
    *) echo "usage: tests/packages.sh [--build-only]" >&2; exit 2 ;;
  esac
done

# Debian architecture, Rust target (empty: the host's), qemu, sysroot, GNU prefix.
ARCHES=(amd64 arm64 armhf)
declare -A TRIPLE=([amd64]="" [arm64]=aarch64-unknown-linux-gnu [armhf]=armv7-unknown-linux-gnueabihf)
declare -A QEMU=([arm64]=qemu-aarch64-static [armhf]=qemu-arm-static)
declare -A SYSROOT=([arm64]=/usr/aarch64-linux-gnu [armhf]=/usr/arm-linux-gnueabihf)
declare -A GNU=([arm64]=aarch64-linux-gnu [armhf]=arm-linux-gnueabihf)
# ELF e_machine of each architecture's binaries (x86-64, AArch64, ARM).
declare -A EMACHINE=([amd64]=62 [arm64]=183 [armhf]=40)

started=$SECONDS
phase() { echo "=== packages: $1 ($((SECONDS - started)) s so far)"; }

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $1"; }
bad() {
  fail=$((fail + 1))
  echo "FAIL - $1"
  if [ -n "${2:-}" ]; then printf '%s\n' "$2" | sed 's/^/       /'; fi
}
check() { # check NAME COMMAND...: ok when the command succeeds
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then ok "$name"; else bad "$name" "$out"; fi
}
finish() {
  echo "packages: $((SECONDS - started)) s in all"
  echo "$pass passed, $fail failed"
  [ "$fail" -eq 0 ]
}

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
DEB_VERSION=$VERSION-1 # cargo-deb's default revision
deb_of() { echo "$OUT/dedyn-update_${DEB_VERSION}_$1.deb"; }
bin_of() { # the release binary of a Debian architecture
  local t=${TRIPLE[$1]}
  echo "$TARGET/${t:+$t/}release/dedyn-update"
}

build_packages() {
  # ---- tools
  phase "tools"
  local a missing=()
  for a in arm64 armhf; do
    command -v "${GNU[$a]}-gcc" >/dev/null || missing+=("gcc-${GNU[$a]}")
    command -v "${QEMU[$a]}" >/dev/null || missing+=(qemu-user-static)
  done
  command -v dpkg-shlibdeps >/dev/null || missing+=(dpkg-dev)
  command -v curl >/dev/null || missing+=(curl)
  if [ ${#missing[@]} -ne 0 ]; then
    echo "packages: missing Debian packages: ${missing[*]} (run tests/install-deps.sh as root)" >&2
    exit 1
  fi
  command -v rustup >/dev/null || {
    echo "packages: rustup is needed to add the arm64 and armhf Rust targets" >&2
    exit 1
  }
  local installed
  installed=$(rustup target list --installed)
  for a in arm64 armhf; do
    grep -qx "${TRIPLE[$a]}" <<<"$installed" || rustup target add "${TRIPLE[$a]}"
  done
  # cargo-deb is a crates.io program, not a Debian package: built once per machine
  # (a few minutes), in a temporary directory rather than our target dir. The
  # version this script was written against.
  if ! cargo deb --version >/dev/null 2>&1; then
    env -u CARGO_TARGET_DIR cargo install --locked cargo-deb@3.8.0
  fi

  # The cross linkers and C compilers (ring, bundled SQLite), for this script only.
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
  export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
  export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
  export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER=arm-linux-gnueabihf-gcc
  export CC_armv7_unknown_linux_gnueabihf=arm-linux-gnueabihf-gcc
  export AR_armv7_unknown_linux_gnueabihf=arm-linux-gnueabihf-ar

  # ---- build: the release profile of Cargo.toml (the binary as benchmarked). The
  # host's in target/release, shared with bench/run.sh; both foreign ones in one
  # cargo run, so that their long C builds (SQLite, ring) share the cores.
  local t0=$SECONDS
  phase "cargo build --release (amd64)"
  cargo build --release --locked --quiet
  echo "packages: amd64 built in $((SECONDS - t0)) s"
  t0=$SECONDS
  phase "cargo build --release (arm64, armhf)"
  cargo build --release --locked --quiet --target "${TRIPLE[arm64]}" --target "${TRIPLE[armhf]}"
  echo "packages: arm64 and armhf built in $((SECONDS - t0)) s"

  # ---- each binary serves the seed's examples before it is packed
  local work=$BUILD_TMP wrapper bin log
  for a in "${ARCHES[@]}"; do
    phase "seed examples against the $a binary"
    bin=$(bin_of "$a")
    check "$a binary is ELF machine ${EMACHINE[$a]}" \
      test "$(od -An -t u2 -j 18 -N 2 "$bin" | tr -d ' ')" = "${EMACHINE[$a]}"
    if [ "$a" != amd64 ]; then
      wrapper=$work/dedyn-update-$a
      printf '#!/bin/sh\nexec %s -L %s %s "$@"\n' "${QEMU[$a]}" "${SYSROOT[$a]}" "$bin" >"$wrapper"
      chmod 755 "$wrapper"
      bin=$wrapper
    fi
    log=$work/seed-$a.log
    t0=$SECONDS
    if DEDYN_BIN=$bin bash tests/seed_examples.sh >"$log" 2>&1; then
      ok "$a: seed examples against a real $a server ($(tail -n1 "$log"), $((SECONDS - t0)) s)"
    else
      bad "$a: seed examples against a real $a server" "$(tail -n 30 "$log")"
    fi
  done
  if [ "$fail" -ne 0 ]; then
    echo "packages: not packing binaries that failed their examples" >&2
    finish
    exit 1
  fi

  # ---- pack
  mkdir -p "$OUT"
  for a in "${ARCHES[@]}"; do
    phase "cargo deb ($a)"
    # Already stripped by the release profile; no second build.
    cargo deb --no-build --no-strip --quiet -o "$OUT/" ${TRIPLE[$a]:+--target "${TRIPLE[$a]}"} >/dev/null
    local deb
    deb=$(deb_of "$a")
    if [ -f "$deb" ]; then
      ok "packed $deb ($(stat -c %s "$deb") bytes)"
    else
      bad "cargo deb did not write $deb" "$(ls -l "$OUT")"
    fi
  done
}

# ---- the packages as files: architecture, contents, conffile, scripts
inspect_packages() {
  phase "package contents"
  local a deb contents
  for a in "${ARCHES[@]}"; do
    deb=$(deb_of "$a")
    [ -f "$deb" ] || continue
    check "$a: Architecture: $a" test "$(dpkg-deb -f "$deb" Architecture)" = "$a"
    check "$a: Version: $DEB_VERSION" test "$(dpkg-deb -f "$deb" Version)" = "$DEB_VERSION"
    check "$a: depends on adduser and libc6" grep -q 'adduser.*libc6\|libc6.*adduser' <<<"$(dpkg-deb -f "$deb" Depends)"
    contents=$(dpkg-deb -c "$deb" | awk '{ print $1, $NF }')
    # The README is what the unit's Documentation= names.
    for f in "-rwxr-xr-x ./usr/bin/dedyn-update" "-rw-r--r-- ./lib/systemd/system/dedyn-update.service" \
      "-rw-r----- ./etc/dedyn-update/config.toml" "-rw-r--r-- ./usr/share/doc/dedyn-update/README.md" \
      "-rw-r--r-- ./usr/share/doc/dedyn-update/docs/install.md" "-rwxr-xr-x ./usr/share/dedyn-update/acme-dns-hook.sh" \
      "-rw-r--r-- ./etc/fail2ban/filter.d/dedyn-update.conf"; do
      check "$a: contains $f" grep -qxF -- "$f" <<<"$contents"
    done
    # cargo-deb gzips manual pages.
    for f in "-rw-r--r-- ./usr/share/man/man8/dedyn-update.8.gz" "-rw-r--r-- ./usr/share/man/man5/dedyn-update.toml.5.gz"; do
      check "$a: contains the manual page $f" grep -qxF -- "$f" <<<"$contents"
    done
    check "$a: /etc/dedyn-update/config.toml is a conffile" \
      grep -qx /etc/dedyn-update/config.toml <<<"$(dpkg-deb -I "$deb" conffiles)"
    check "$a: the fail2ban filter is a conffile" \
      grep -qx /etc/fail2ban/filter.d/dedyn-update.conf <<<"$(dpkg-deb -I "$deb" conffiles)"
    check "$a: has postinst, prerm, postrm" dpkg-deb -I "$deb" postinst prerm postrm
  done
}

if [ $build_only = yes ]; then
  BUILD_TMP=$(mktemp -d "${TMPDIR:-/tmp}/dedyn-pkgbuild.XXXXXX")
  trap 'rm -rf "$BUILD_TMP"' EXIT
  build_packages
  inspect_packages
  echo "packages: written to $OUT/"
  finish
  exit
fi

# ---------------------------------------------------------------- dpkg test
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "packages: installing packages needs root: run as root (or with sudo)," >&2
    echo "packages: or only build them: tests/packages.sh --build-only" >&2
    exit 1
  fi
fi
root() { "${SUDO[@]}" "$@"; }

STATE=/var/lib/dedyn-update
CONF=/etc/dedyn-update/config.toml
UNIT=/lib/systemd/system/dedyn-update.service
if dpkg-query -W -f '${Status}' dedyn-update 2>/dev/null | grep -qv 'not-installed'; then
  echo "packages: dedyn-update is installed on this machine; this test installs and purges it:" >&2
  echo "packages: purge it first (dpkg -P dedyn-update) if it is not needed" >&2
  exit 1
fi
# What the NSD script of the README writes (it names these paths).
NSD_CONF=/etc/nsd/nsd.conf.d/dedyn-update.conf
NSD_SPOOL=/var/lib/nsd/dedyn-update
DROPIN=/etc/systemd/system/dedyn-update.service.d
# ... and what the README's install from source writes.
SOURCE_FILES=(/usr/bin/dedyn-update /etc/systemd/system/dedyn-update.service /usr/share/doc/dedyn-update)
for p in "$STATE" /etc/dedyn-update "$NSD_CONF" "$NSD_SPOOL" "$DROPIN" "${SOURCE_FILES[@]}"; do
  if [ -e "$p" ]; then
    echo "packages: $p exists; this test would install over it and delete it: move it away first" >&2
    exit 1
  fi
done
# The machine's NSD (Debian's unit runs it without -c; test rigs pass their own -c).
if pgrep -a -x nsd | grep -vq -- ' -c '; then
  echo "packages: nsd is running; this test starts Debian's NSD on port 53: stop it first" >&2
  exit 1
fi
if [ -n "$(ss -Hlnut 'sport = :53')" ]; then
  echo "packages: port 53 is taken; the README's NSD listens there:" >&2
  ss -Hlnutp 'sport = :53' >&2
  exit 1
fi
user_existed=no
getent passwd dedyn-update >/dev/null && user_existed=yes
# NSD's own state files and run directory, made when it first runs, and nsd's
# membership in group dedyn-update (the NSD script adds it): undone at the end
# only if this run made them.
nsd_state=()
for f in /var/lib/nsd/nsd.db /var/lib/nsd/xfrd.state /run/nsd; do [ -e "$f" ] || nsd_state+=("$f"); done
nsd_in_group=no
id -nG nsd 2>/dev/null | grep -qw dedyn-update && nsd_in_group=yes

TMP=$(mktemp -d "${TMPDIR:-/tmp}/dedyn-pkgtest.XXXXXX")
chmod 755 "$TMP"
# The README's systemctl commands (see the top): never the machine's own services.
export SYSTEMCTL_STATE=$TMP/systemd
README_PATH=$ROOT/tests/no-systemd:$PATH
readme_systemctl() { root env PATH="$README_PATH" SYSTEMCTL_STATE="$SYSTEMCTL_STATE" systemctl "$@"; }
cleanup() {
  readme_systemctl stop nsd >/dev/null 2>&1 || true
  readme_systemctl stop dedyn-update >/dev/null 2>&1 || true
  root rm -rf "$NSD_CONF" "$NSD_SPOOL" "$DROPIN" "${nsd_state[@]}"
  if [ $nsd_in_group = no ] && id -nG nsd 2>/dev/null | grep -qw dedyn-update; then
    root gpasswd -d nsd dedyn-update >/dev/null || true
  fi
  root dpkg -P dedyn-update >/dev/null 2>&1 || true
  root rm -rf "$STATE" /etc/dedyn-update "${SOURCE_FILES[@]}"
  if [ $user_existed = no ] && getent passwd dedyn-update >/dev/null; then
    root userdel dedyn-update || true
    if getent group dedyn-update >/dev/null; then root groupdel dedyn-update || true; fi
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# The README's build command, as written; its own checks print above.
if bash tests/packages.sh --build-only; then
  ok "tests/packages.sh --build-only"
else
  bad "tests/packages.sh --build-only"
  finish
  exit 1
fi

# As the unit runs it: its User=, ExecStart= and WorkingDirectory=, from the installed unit.
unit_value() { sed -n "s/^$1=//p" "$UNIT" | head -n1; }
as_service() { # run as the unit's user, from / (relative paths would fail there)
  (cd / && root setpriv --reuid="$(unit_value User)" --regid="$(unit_value Group)" --init-groups "$@")
}
cli() { as_service /usr/bin/dedyn-update --config "$CONF" "$@"; }
dedyn_processes() { # pids running the installed binary (other tests' servers are elsewhere)
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/exe" 2>/dev/null)" = /usr/bin/dedyn-update ] && echo "${p#/proc/}"
  done
  true
}

# serve_start / serve_stop: the unit as tests/no-systemd/systemctl starts it (its
# ExecStart=, User=, groups, UMask=, WorkingDirectory=); PORT is the HTTP port it logged.
serve_start() {
  PORT=
  : >"$SYSTEMCTL_STATE/dedyn-update.log"
  readme_systemctl start dedyn-update
  for _ in $(seq 200); do # up to 10 s
    PORT=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$SYSTEMCTL_STATE/dedyn-update.log" | head -n1)
    [ -n "$PORT" ] && return 0
    readme_systemctl is-active dedyn-update || break
    sleep 0.05
  done
  bad "serve did not start listening" "$(tail -n 5 "$SYSTEMCTL_STATE/dedyn-update.log")"
  return 1
}
serve_stop() { readme_systemctl stop dedyn-update; }
# serve_update ADDRESS: start, send one update with $TOKEN, stop; prints the answer.
serve_update() {
  local answer
  if serve_start; then
    answer=$(curl -sS --max-time 10 -H "Authorization: Token $TOKEN" \
      "http://127.0.0.1:$PORT/?hostname=$NAME&myipv4=$1&myipv6=") || answer="curl failed"
    serve_stop
  else
    answer="no server"
  fi
  echo "$answer"
}

# readme_block MARKER: the fenced block right after the line `<!-- MARKER -->` in
# README.md or docs/*.md (tests/it/common/readme.rs reads them alike); the marker must
# occur exactly once across them.
readme_block() {
  local n
  n=$(cat README.md docs/*.md | grep -cxF -- "<!-- $1 -->" || true)
  if [ "$n" != 1 ]; then
    echo "packages: <!-- $1 --> occurs $n times in README.md and docs/*.md (must be once)" >&2
    return 1
  fi
  awk -v m="<!-- $1 -->" '$0 == m { f = 1; next }
       inb && /^```$/ { exit }
       f && !inb && /^```[a-z]*$/ { inb = 1; next }
       inb { print }' README.md docs/*.md
}

wait_for_zone() { # wait_for_zone ADDRESS: the published zone carries it (bounded)
  for _ in $(seq 100); do
    grep -q "$1" "$ZONE_FILE" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# ---- install with the README's command
phase "install (amd64)"
apt_line=$(readme_block "tests/packages.sh runs the next block (version and architecture substituted)")
check "README: the install block is one apt install of the arm64 package" \
  grep -qx 'apt install ./dedyn-update_<version>_arm64.deb .*' <<<"$apt_line"
apt_line=${apt_line//<version>_arm64/${DEB_VERSION}_amd64}
installed_at=$(date +%s.%N)
# apt asks "Do you want to continue? [Y/n]": answered as the reader would.
(cd "$OUT" && printf 'Y\n' | root env DEBIAN_FRONTEND=noninteractive sh -e -c "$apt_line") >"$TMP/apt.log" 2>&1 ||
  bad "README: $apt_line" "$(tail -n 20 "$TMP/apt.log")"
check "installed: dpkg says install ok installed" \
  test "$(dpkg-query -W -f '${Status} ${Version}' dedyn-update)" = "install ok installed $DEB_VERSION"
check "/usr/bin/dedyn-update is the amd64 build" cmp /usr/bin/dedyn-update "$(bin_of amd64)"
check "$UNIT is the repository's unit" cmp "$UNIT" dedyn-update.service
check "the unit's ExecStart is /usr/bin/dedyn-update with $CONF" \
  test "$(unit_value ExecStart)" = "/usr/bin/dedyn-update --config $CONF serve"
doc=$(unit_value Documentation)
check "the unit's Documentation= ($doc) is installed" test -f "${doc#file://}"
check "$CONF is the packaged config" cmp "$CONF" data/deb/config.toml
check "$CONF is root:dedyn-update 640 (the service reads it, other users do not)" \
  test "$(stat -c '%U:%G %a' "$CONF")" = "root:dedyn-update 640"
check "$CONF is a registered conffile" grep -q "^ $CONF " <<<"$(dpkg-query -W -f '${Conffiles}\n' dedyn-update)"
pw=$(getent passwd dedyn-update || true)
check "system user dedyn-update (uid < 1000, nologin, home $STATE)" \
  awk -F: -v h="$STATE" '$3 < 1000 && $6 == h && $7 ~ /nologin$/ { found = 1 } END { exit !found }' <<<"$pw"
check "$STATE is dedyn-update:dedyn-update 750" test "$(stat -c '%U:%G %a' "$STATE")" = "dedyn-update:dedyn-update 750"
check "man dedyn-update finds the installed page" \
  test "$(man -w dedyn-update)" = /usr/share/man/man8/dedyn-update.8.gz
check "man dedyn-update.toml renders the configuration page" \
  sh -c 'MANPAGER=cat PAGER=cat man dedyn-update.toml 2>/dev/null | grep -q "http_listen"'
check "nothing started on install" test -z "$(dedyn_processes)"
check "not enabled on install" test ! -e /etc/systemd/system/multi-user.target.wants/dedyn-update.service
check "the packaged config listens on 127.0.0.1 only" \
  grep -qx 'http_listen = \["127.0.0.1:8080"\] .*' "$CONF"

# ---- first use: the README's three steps, as written
phase "first use: the README's zone, nameserver nsd | sh -e, enable --now, admin block"
# 1. The one edit: the README's [[zone]] in place of the packaged one (the last
# section of the packaged file), and the HTTP port (any free one).
zone_block=$(readme_block "tests/packages.sh puts the next block in place of the packaged [[zone]]")
ZONE=$(sed -n 's/^name = "\(.*\)"$/\1/p' <<<"$zone_block")
ZONE_FILE=$(sed -n 's/^file = "\(.*\)"$/\1/p' <<<"$zone_block")
NAME=alice.$ZONE
check "README: the zone block names a zone and a file under $STATE/zones/" \
  test -n "$ZONE" -a "${ZONE_FILE#"$STATE"/zones/}" != "$ZONE_FILE"
check "the packaged config ends with its one [[zone]]" \
  test "$(sed -n '/^\[\[zone\]\]/,$p' "$CONF" | grep -c '^\[')" = 1
{ sed '/^\[\[zone\]\]/,$d' "$CONF" && printf '%s\n' "$zone_block"; } >"$TMP/config.toml"
root cp "$TMP/config.toml" "$CONF"
root sed -i 's|^http_listen = .*|http_listen = ["127.0.0.1:0"]   # edited|' "$CONF"
check "the edited config loads" root /usr/bin/dedyn-update --config "$CONF" nameserver nsd

# 2. The README's nameserver block, as written, from a directory the service user
# cannot read (only absolute paths work).
mkdir -m 700 "$TMP/private"
ns_block=$(readme_block "tests/packages.sh runs the next block")
check "README: the nameserver block pipes nameserver nsd to sh -e and starts the unit" \
  grep -qz 'nameserver nsd | sh -e.*systemctl enable --now dedyn-update' <<<"$ns_block"
if (cd "$TMP/private" && root env PATH="$README_PATH" SYSTEMCTL_STATE="$SYSTEMCTL_STATE" \
  bash -e -c "$ns_block") >"$TMP/nameserver.out" 2>&1; then
  ok "README: the nameserver block ran as written"
else
  bad "README: the nameserver block failed" "$(cat "$TMP/nameserver.out")"
fi
check "it set [dns] in $CONF" grep -qx 'reload_command = "nsd-control -c /etc/nsd/nsd.conf reload {zone}"' "$CONF"
check "nsd runs" readme_systemctl is-active nsd
PORT=
for _ in $(seq 200); do # up to 10 s
  PORT=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$SYSTEMCTL_STATE/dedyn-update.log" 2>/dev/null | head -n1)
  [ -n "$PORT" ] && break
  sleep 0.05
done
check "dedyn-update runs and listens (port ${PORT:-none})" test -n "$PORT"
check "... with the drop-in's group nsd" \
  grep -qw "$(getent group nsd | cut -d: -f3)" <<<"$(grep ^Groups: /proc/"$(cat "$SYSTEMCTL_STATE/dedyn-update.pid")"/status)"

# 3. The README's admin block, port substituted.
TOKEN=none
block=$(readme_block "tests/packages.sh runs the next block (address and port substituted)")
check "README: the admin block is there and uses runuser" grep -q 'runuser -u dedyn-update' <<<"$block"
block=${block//127.0.0.1:8080/127.0.0.1:${PORT:-8080}}
if (cd "$TMP/private" && root bash -e -c "$block"$'\n''printf %s "$TOKEN" >'"$TMP/token") >"$TMP/readme.out" 2>&1; then
  ok "README: the admin block ran as written (user, domain, token, curl, check, status)"
else
  bad "README: the admin block failed" "$(cat "$TMP/readme.out")"
fi
served_at=$(date +%s.%N)
check "README: its curl got good" grep -q '^good' "$TMP/readme.out"
check "README: its status ends with served (NSD on 127.0.0.1:53 answers)" \
  test "$(tail -n1 "$TMP/readme.out")" = served
check "README: ... after NSD's answer as the README shows it" \
  grep -qx 'nameserver 127.0.0.1:53: serial [0-9]*, answers \[192.0.2.1, fd08::1\]' <<<"$(tail -n2 "$TMP/readme.out" | head -n1)"
TOKEN=$(cat "$TMP/token" 2>/dev/null || echo none)
# The README's check --reload, with the group the unit's drop-in gives the service.
reload_block=$(readme_block "tests/packages.sh runs the next block (check --reload with the unit's group)")
if (cd "$TMP/private" && root bash -e -c "$reload_block") >"$TMP/reload.out" 2>&1; then
  ok "README: check --reload with the unit's group ran as written"
else
  bad "README: check --reload with the unit's group failed" "$(cat "$TMP/reload.out")"
fi
check "... it ran the reload command and NSD served the serial" \
  grep -q 'reload command ran; 127.0.0.1:53 serves the published serial' "$TMP/reload.out"
check "dig @127.0.0.1 (port 53) $NAME A: NSD answers 192.0.2.1" \
  test "$(dig +short +time=2 +tries=1 @127.0.0.1 "$NAME" A)" = 192.0.2.1
check "dig @127.0.0.1 (port 53) $NAME AAAA: NSD answers fd08::1" \
  test "$(dig +short +time=2 +tries=1 @127.0.0.1 "$NAME" AAAA)" = fd08::1
echo "packages: apt install → served by NSD: $(awk -v a="$installed_at" -v b="$served_at" 'BEGIN { printf "%.1f", b - a }') s"
check "NSD's IXFR spool is in $NSD_SPOOL, not in $STATE/zones" \
  sh -c "ls $NSD_SPOOL | grep -q ixfr && ! ls $STATE/zones | grep -q ixfr"
readme_systemctl stop dedyn-update

# The README's line that opens the service to clients, as written (nothing is
# started with it: port 80 may be taken); then the config as the test had it.
root cp -p "$CONF" "$TMP/config.before"
open_block=$(readme_block "tests/packages.sh runs the next block (and then puts the config back)")
if root bash -e -c "$open_block" >"$TMP/open.out" 2>&1; then
  ok "README: config set server.http_listen ran as written"
else
  bad "README: config set server.http_listen failed" "$(cat "$TMP/open.out")"
fi
check "... and $CONF listens on port 80 of every address" \
  grep -qxF 'http_listen = ["0.0.0.0:80", "[::]:80"]' "$CONF"
check "... and still loads" root /usr/bin/dedyn-update --config "$CONF" nameserver nsd
check "... with its owner and mode" test "$(stat -c '%U:%G %a' "$CONF")" = "$(stat -c '%U:%G %a' "$TMP/config.before")"
root cp -p "$TMP/config.before" "$CONF"

check "the update is stored" test "$(cli records "$NAME" 2>&1)" = $'A 192.0.2.1\nAAAA fd08::1'
check "the database is $STATE/dedyn-update.sqlite3, owned by dedyn-update" \
  test "$(stat -c %U "$STATE/dedyn-update.sqlite3" 2>&1)" = dedyn-update
check "the zone is published as $ZONE_FILE, owned by dedyn-update" \
  sh -c "grep -q 192.0.2.1 $ZONE_FILE && test \"\$(stat -c %U $ZONE_FILE)\" = dedyn-update"
check "dedyn-update --config $CONF check, as dedyn-update from /" cli check
check "a second server run answers an update: good" test "$(serve_update 192.0.2.2)" = good
check "... and publishes it" wait_for_zone 192.0.2.2

# ---- upgrade to a newer build: database and edited config survive
phase "upgrade"
# The same package with a higher version: repacked here, since cargo-deb would
# delete the $DEB_VERSION package from $OUT when writing another version.
NEW_VERSION=$DEB_VERSION+upgradetest1
root rm -rf "$TMP/repack"
dpkg-deb -R "$(deb_of amd64)" "$TMP/repack"
sed -i "s/^Version: .*/Version: $NEW_VERSION/" "$TMP/repack/DEBIAN/control"
dpkg-deb --root-owner-group -Zgzip -b "$TMP/repack" "$TMP/dedyn-update_${NEW_VERSION}_amd64.deb" >/dev/null
root dpkg -i "$TMP/dedyn-update_${NEW_VERSION}_amd64.deb" >"$TMP/dpkg.log" 2>&1 ||
  bad "dpkg -i (upgrade to $NEW_VERSION)" "$(tail -n 20 "$TMP/dpkg.log")"
check "upgraded to $NEW_VERSION" \
  test "$(dpkg-query -W -f '${Status} ${Version}' dedyn-update)" = "install ok installed $NEW_VERSION"
check "the edited config survived the upgrade" grep -qxF 'http_listen = ["127.0.0.1:0"]   # edited' "$CONF"
check "the database survived the upgrade" test "$(cli records "$NAME" 2>&1)" = "A 192.0.2.2"
check "nothing started on upgrade" test -z "$(dedyn_processes)"
check "after the upgrade, serve answers an update with the old token: good" test "$(serve_update 192.0.2.3)" = good
check "... and publishes it" wait_for_zone 192.0.2.3

# ---- remove: config and data stay
phase "remove"
root dpkg -r dedyn-update >"$TMP/dpkg.log" 2>&1 || bad "dpkg -r dedyn-update" "$(tail -n 20 "$TMP/dpkg.log")"
check "removed: binary and unit gone" test ! -e /usr/bin/dedyn-update -a ! -e "$UNIT"
check "removed: dpkg keeps only config-files" \
  test "$(dpkg-query -W -f '${Status}' dedyn-update)" = "deinstall ok config-files"
check "removed: the edited config is kept" grep -qxF 'http_listen = ["127.0.0.1:0"]   # edited' "$CONF"
check "removed: the database is kept" test -s "$STATE/dedyn-update.sqlite3"

# ---- purge: config goes, non-empty data stays
phase "purge"
root dpkg -P dedyn-update >"$TMP/dpkg.log" 2>&1 || bad "dpkg -P dedyn-update" "$(tail -n 20 "$TMP/dpkg.log")"
check "purged: dpkg no longer knows the package" sh -c '! dpkg-query -W -f "\${Status}" dedyn-update 2>/dev/null | grep -q ok'
check "purged: /etc/dedyn-update is gone" test ! -e /etc/dedyn-update
check "purged: the database and zone in $STATE are kept" \
  test -s "$STATE/dedyn-update.sqlite3" -a -s "$ZONE_FILE"
check "purged: the user dedyn-update that owns them is kept" getent passwd dedyn-update

# ---- install then purge with no data: nothing is left
phase "install and purge, no data"
root rm -rf "$STATE"
if root dpkg -i "$(deb_of amd64)" >"$TMP/dpkg.log" 2>&1 && test -d "$STATE" -a -f "$CONF" &&
  root dpkg -P dedyn-update >>"$TMP/dpkg.log" 2>&1; then
  check "an install purged before first use leaves no $STATE and no /etc/dedyn-update" \
    test ! -e "$STATE" -a ! -e /etc/dedyn-update
else
  bad "dpkg -i, then dpkg -P" "$(tail -n 20 "$TMP/dpkg.log")"
fi

# ---- the README's install from source ("Running it with systemd"), as written
# but as root: `sudo CMD` runs CMD, `sudo -u dedyn-update` is runuser; its
# `cargo build --release` is the build this script made (its binary in $TARGET).
phase "install from source (README: Running it with systemd)"
from_source() { # from_source MARKER: the README's block, run as root from the repository
  local block
  block=$(readme_block "tests/packages.sh runs the next block ($1)")
  block=$(sed -e '/^cargo build --release$/d' -e "s#target/release/#$TARGET/release/#" \
    -e 's/^sudo -u dedyn-update /runuser -u dedyn-update -- /' -e 's/sudo //g' <<<"$block")
  (cd "$ROOT" && root env PATH="$README_PATH" SYSTEMCTL_STATE="$SYSTEMCTL_STATE" bash -e -c "$block") \
    >"$TMP/source.out" 2>&1
}
if [ $user_existed = yes ]; then
  bad "install from source: the user dedyn-update existed before this run; its useradd would fail"
else
  # The state of a fresh machine: no user (the purge above kept it), no state directory.
  root userdel dedyn-update
  if getent group dedyn-update >/dev/null; then root groupdel dedyn-update; fi
  if from_source "from source; as root, so without sudo"; then
    ok "README: the install commands ran as written"
  else
    bad "README: the install commands failed" "$(cat "$TMP/source.out")"
  fi
  check "/usr/bin/dedyn-update is the build" cmp /usr/bin/dedyn-update "$(bin_of amd64)"
  check "$CONF is the example, group dedyn-update, 0640" \
    sh -c "cmp $CONF data/dedyn-update.example.toml && test \"\$(stat -c '%G %a' $CONF)\" = 'dedyn-update 640'"
  # The edit the README asks for before the start: here only the HTTP port.
  root sed -i 's|^http_listen = .*|http_listen = ["127.0.0.1:0"]   # edited|' "$CONF"
  : >"$SYSTEMCTL_STATE/dedyn-update.log"
  if from_source "from source, started"; then
    ok "README: daemon-reload, enable --now, check and reload ran as written"
  else
    bad "README: daemon-reload, enable --now, check and reload failed" "$(cat "$TMP/source.out")"
  fi
  check "... check said the config and database are ok" \
    grep -qx "database: $STATE/dedyn-update.sqlite3 (schema [0-9]*): ok" "$TMP/source.out"
  for _ in $(seq 200); do # up to 10 s for the signal to be logged
    grep -q 'SIGHUP: reloading TLS' "$SYSTEMCTL_STATE/dedyn-update.log" && break
    sleep 0.05
  done
  check "... the service took the reload (SIGHUP)" grep -q 'SIGHUP: reloading TLS' "$SYSTEMCTL_STATE/dedyn-update.log"
  check "... and runs" readme_systemctl is-active dedyn-update
  check "... from the state directory systemd would make: $STATE, dedyn-update 750" \
    test "$(stat -c '%U %a' "$STATE")" = "dedyn-update 750"
  if from_source "from source, admin command"; then
    ok "README: user list as the service user ran as written"
  else
    bad "README: user list as the service user failed" "$(cat "$TMP/source.out")"
  fi
  readme_systemctl stop dedyn-update
  root rm -rf "${SOURCE_FILES[@]}" /etc/dedyn-update "$STATE"
fi

# ---- what the README started, stopped (the cleanup does it again, in any case)
phase "stop NSD"
readme_systemctl stop nsd
check "NSD stopped: port 53 is free again" test -z "$(ss -Hlnut 'sport = :53')"

finish
