#!/usr/bin/env bash
# Installs the external programs the integration tests drive (nameservers,
# zone checkers, DNS clients, ddclient, load tools, the ACME test CA pebble and
# the ACME client lego, python3-venv, cross compilers and qemu-user for the
# packages) on Debian 12 (bookworm). certbot and its dns-acmedns plugin come
# from PyPI, into a venv tests/it/acme/certbot_and_lego.rs makes.
#
# Idempotent: when every command is already on PATH it does nothing (no apt).
# As root it installs what is missing; otherwise it fails naming the commands
# and the packages to install.
#
# Note on kzonecheck: Debian 12's `knot` package does NOT ship it; it is in
# `knot-dnssecutils` (moved there from knot-dnsutils, Debian bug #925035).
# tests/it/common/ns.rs still falls back to loading the zone in a throwaway
# knotd when kzonecheck is absent, so a machine without it is not blocked.
set -euo pipefail

# command -> Debian package that ships it (bookworm)
declare -A PKG=(
  [man]=man-db          # tests/it/packages/man_pages.rs, tests/packages.sh: the manual pages render
  [nsd]=nsd
  [nsd-control]=nsd
  [nsd-checkzone]=nsd
  [knotd]=knot
  [knotc]=knot
  [kzonecheck]=knot-dnssecutils
  [named-checkzone]=bind9-utils
  [named]=bind9         # tests/it/operator/nameserver_command.rs: BIND from Debian's stock named.conf
  [rndc]=bind9-utils
  [rndc-confgen]=bind9-utils
  [dnssec-dsfromkey]=bind9-utils
  [apparmor_parser]=apparmor # tests/it/operator/nameserver_command.rs: parses named's profile with our override
  [delv]=bind9-dnsutils # tests/it/operator/nameserver_command.rs: validates Knot's signatures
  [keymgr]=knot         # tests/it/operator/nameserver_command.rs: the DS record for the parent
  [dig]=bind9-dnsutils
  [nsupdate]=bind9-dnsutils # tests/it/dns_update: the docs' nsupdate -k recipes
  [kdig]=knot-dnsutils
  [ddclient]=ddclient
  [inadyn]=inadyn        # tests/it/operator/client_recipes.rs: the README's inadyn recipe
  [curl]=curl
  [msmtp]=msmtp          # tests/it/history_and_events/mail_and_webhook_recipes.rs: docs/events.md's mail recipe, msmtp as sendmail
  [openssl]=openssl
  [wrk]=wrk
  [fail2ban-regex]=fail2ban  # tests/it/logging/fail2ban.rs: the README filter, as fail2ban reads it
  [strace]=strace
  [setpriv]=util-linux   # tests/it/edge/internal_hop.rs: a request from another user
  [systemd-analyze]=systemd
  [nginx]=nginx-light   # bench/run.sh: the reference HTTP server
  [strip]=binutils      # bench/run.sh: size of the stripped binary
  [pebble]=pebble       # tests/it/acme/certbot_and_lego.rs: the ACME test CA
  [lego]=lego           # tests/it/acme/certbot_and_lego.rs: ACME client (exec provider + our hook)
  # tests/packages.sh: cross toolchains, qemu-user for the foreign binaries, the
  # .deb tools (cargo-deb runs dpkg-shlibdeps) and what the package's postinst uses.
  [aarch64-linux-gnu-gcc]=gcc-aarch64-linux-gnu
  [arm-linux-gnueabihf-gcc]=gcc-arm-linux-gnueabihf
  [qemu-aarch64-static]=qemu-user-static
  [qemu-arm-static]=qemu-user-static
  [dpkg-shlibdeps]=dpkg-dev
  [adduser]=adduser
  [setpriv]=util-linux
  [ss]=iproute2          # tests/packages.sh: is port 53 free for the README's NSD?
  [unshare]=util-linux   # tests/it/operator/config_and_check.rs: a read-only mount in a private namespace
  [gpasswd]=passwd       # tests/packages.sh: takes nsd out of group dedyn-update again
)
# Files no command stands for -> Debian package (the cross C libraries: the
# cross gcc packages only recommend them, and we install without recommends).
declare -A FILE_PKG=(
  [/usr/aarch64-linux-gnu/include/stdio.h]=libc6-dev-arm64-cross
  [/usr/arm-linux-gnueabihf/include/stdio.h]=libc6-dev-armhf-cross
  # tests/it/history_and_events/mail_and_webhook_recipes.rs: the loopback SMTP sink the mail recipe sends to.
  [/usr/lib/python3/dist-packages/aiosmtpd/__init__.py]=python3-aiosmtpd
)
# Packages that come with a system daemon -> its service unit.
declare -A DAEMON_UNIT=(
  [nsd]=nsd.service
  [knot]=knot.service
  [ddclient]=ddclient.service
  [fail2ban]=fail2ban.service
  [bind9]=named.service
  [inadyn]=inadyn.service
)

# /usr/sbin is not on every non-root PATH; look there too.
have() { PATH="$PATH:/usr/sbin:/sbin" command -v "$1" >/dev/null 2>&1; }

missing_cmds=()
for cmd in "${!PKG[@]}"; do
  have "$cmd" || missing_cmds+=("$cmd")
done
# Not a command: ddclient's HTTPS (ssl=yes in the README recipe) needs this
# Perl module, which Debian's ddclient only recommends.
if ! perl -MIO::Socket::SSL -e 1 >/dev/null 2>&1; then
  PKG[perl:IO::Socket::SSL]=libio-socket-ssl-perl
  missing_cmds+=("perl:IO::Socket::SSL")
fi
for file in "${!FILE_PKG[@]}"; do
  [ -e "$file" ] || missing_cmds+=("$file")
done

# Not a command: Debian's python3 needs python3-venv (venv + ensurepip) for the
# venv tests/it/acme/certbot_and_lego.rs makes to pip-install certbot and its dns-acmedns plugin,
# and for tests/it/standby/kill_and_promote.rs's (Litestream and moto, docs/standby.md).
venv_ok() { /usr/bin/python3 -c 'import venv, ensurepip' >/dev/null 2>&1; }
extra_pkgs=()
venv_ok || extra_pkgs+=(python3-venv)

if [ ${#missing_cmds[@]} -eq 0 ] && [ ${#extra_pkgs[@]} -eq 0 ]; then
  echo "install-deps: all test dependencies present"
  exit 0
fi

# Unique, sorted package list for the missing commands.
mapfile -t pkgs < <({
  for c in "${missing_cmds[@]}"; do echo "${PKG[$c]:-${FILE_PKG[$c]:-}}"; done
  for p in "${extra_pkgs[@]}"; do echo "$p"; done
} | sort -u)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing: ${missing_cmds[*]} ${extra_pkgs[*]}" >&2
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

# Make sure the freshly installed daemons are neither running nor enabled: our
# tests use their own configs on high loopback ports, and a named/nsd/knot
# started at the next boot would take port 53. Without a running systemd (most
# CI containers) `systemctl disable` still removes the enablement links offline.
# Only units of packages installed just now: an operator's running nsd is none
# of our business.
if have systemctl; then
  now=""
  if [ -d /run/systemd/system ]; then now="--now"; fi
  for pkg in "${pkgs[@]}"; do
    unit=${DAEMON_UNIT[$pkg]:-}
    if [ -n "$unit" ]; then
      systemctl disable $now "$unit" >/dev/null 2>&1 || true
    fi
  done
fi

still_missing=()
for cmd in "${missing_cmds[@]}"; do
  case $cmd in
    perl:*) perl -M"${cmd#perl:}" -e 1 >/dev/null 2>&1 || still_missing+=("$cmd") ;;
    /*) [ -e "$cmd" ] || still_missing+=("$cmd") ;;
    *) have "$cmd" || still_missing+=("$cmd") ;;
  esac
done
venv_ok || still_missing+=("python3 venv module")
if [ ${#still_missing[@]} -ne 0 ]; then
  echo "install-deps: still missing after install: ${still_missing[*]}" >&2
  exit 1
fi
echo "install-deps: done"
