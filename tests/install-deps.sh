#!/usr/bin/env bash
# Installs the external programs the integration tests drive (nameservers,
# zone checkers, DNS clients, ddclient, load tools) on Debian 12 (bookworm).
#
# Idempotent: when every command is already on PATH it does nothing (no apt).
# As root it installs what is missing; otherwise it fails naming the commands
# and the packages to install.
#
# Note on kzonecheck: Debian 12's `knot` package does NOT ship it; it is in
# `knot-dnssecutils` (moved there from knot-dnsutils, Debian bug #925035).
# tests/common/ns.rs still falls back to loading the zone in a throwaway
# knotd when kzonecheck is absent, so a machine without it is not blocked.
set -euo pipefail

# command -> Debian package that ships it (bookworm)
declare -A PKG=(
  [nsd]=nsd
  [nsd-control]=nsd
  [nsd-checkzone]=nsd
  [knotd]=knot
  [knotc]=knot
  [kzonecheck]=knot-dnssecutils
  [named-checkzone]=bind9-utils
  [dig]=bind9-dnsutils
  [kdig]=knot-dnsutils
  [ddclient]=ddclient
  [curl]=curl
  [openssl]=openssl
  [wrk]=wrk
  [strace]=strace
  [setpriv]=util-linux   # tests/hop.rs: a request from another user
  [systemd-analyze]=systemd
  [nginx]=nginx-light   # bench/run.sh: the reference HTTP server
  [strip]=binutils      # bench/run.sh: size of the stripped binary
)
# Packages that come with a system daemon (service unit of the same name).
DAEMON_PKGS=" nsd knot ddclient "

# /usr/sbin is not on every non-root PATH; look there too.
have() { PATH="$PATH:/usr/sbin:/sbin" command -v "$1" >/dev/null 2>&1; }

missing_cmds=()
for cmd in "${!PKG[@]}"; do
  have "$cmd" || missing_cmds+=("$cmd")
done

if [ ${#missing_cmds[@]} -eq 0 ]; then
  echo "install-deps: all test dependencies present"
  exit 0
fi

# Unique, sorted package list for the missing commands.
mapfile -t pkgs < <(for c in "${missing_cmds[@]}"; do echo "${PKG[$c]}"; done | sort -u)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing commands: ${missing_cmds[*]}" >&2
  echo "install-deps: run as root, or: sudo apt-get install --no-install-recommends ${pkgs[*]}" >&2
  exit 1
fi

echo "install-deps: installing ${pkgs[*]} (for: ${missing_cmds[*]})"

# Keep the packages' maintainer scripts from starting their daemons (nsd, knot,
# ddclient would otherwise grab :53 or start polling): policy-rc.d exit 101
# means "action forbidden" to invoke-rc.d and deb-systemd-invoke. Only install
# our own when none exists, and always remove it again.
policy=/usr/sbin/policy-rc.d
own_policy=no
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  own_policy=yes
fi
cleanup() { if [ "$own_policy" = yes ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${pkgs[@]}"

# If a real systemd is running (not the case in most CI containers), make sure
# the freshly installed daemons are neither running nor enabled. Our tests use
# their own configs on high loopback ports, so this is hygiene, not a need.
# Only units of packages installed just now: an operator's running nsd is
# none of our business.
if [ -d /run/systemd/system ] && have systemctl; then
  for pkg in "${pkgs[@]}"; do
    case "$DAEMON_PKGS" in
      *" $pkg "*) systemctl disable --now "$pkg.service" >/dev/null 2>&1 || true ;;
    esac
  done
fi

still_missing=()
for cmd in "${missing_cmds[@]}"; do
  have "$cmd" || still_missing+=("$cmd")
done
if [ ${#still_missing[@]} -ne 0 ]; then
  echo "install-deps: still missing after install: ${still_missing[*]}" >&2
  exit 1
fi
echo "install-deps: done"
