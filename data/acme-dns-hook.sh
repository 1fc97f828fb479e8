#!/bin/sh
# DNS-01 hook for lego's (and Traefik's) `exec` provider: puts the challenge
# value into dedyn-update with acme-dns's update call (POST /update, SPEC 10).
#
# lego runs it as:   acme-dns-hook.sh present _acme-challenge.NAME. VALUE
#                    acme-dns-hook.sh cleanup _acme-challenge.NAME. VALUE
# (EXEC_MODE unset: lego's default mode; RAW mode is not supported.)
#
# Settings, from the environment (the names acme.sh's dns_acmedns uses):
#   ACMEDNS_UPDATE_URL  e.g. https://dyn.example.org/update
#   ACMEDNS_USERNAME    the name the token's owner holds (or the owner's email)
#   ACMEDNS_PASSWORD    a token made with `token add --scope acme` (or both)
#   ACMEDNS_SUBDOMAIN   optional: the name to write for; default: NAME from lego
#
# `cleanup` does nothing: the server keeps the two most recent values per name
# and removes each an hour after it was written.
#
# The token goes to curl on its standard input, never on its command line, so
# that other users of the machine cannot read it from the process list.
set -eu

die() {
    echo "acme-dns-hook: $*" >&2
    exit 1
}

[ $# -eq 3 ] || die "usage: $0 present|cleanup _acme-challenge.NAME. VALUE"
action=$1 fqdn=$2 value=$3

case $action in
    cleanup) exit 0 ;;
    present) ;;
    *) die "unknown action '$action' (expected present or cleanup)" ;;
esac

: "${ACMEDNS_UPDATE_URL:?set ACMEDNS_UPDATE_URL, e.g. https://dyn.example.org/update}"
: "${ACMEDNS_USERNAME:?set ACMEDNS_USERNAME to your name (or your email)}"
: "${ACMEDNS_PASSWORD:?set ACMEDNS_PASSWORD to a token with the acme scope}"

# _acme-challenge.NAME. -> NAME
name=${fqdn%.}
name=${name#_acme-challenge.}
subdomain=${ACMEDNS_SUBDOMAIN:-$name}

# Both go into a JSON string below: allow only what a name and a challenge
# value can hold, so that nothing needs escaping (the server checks again).
case $subdomain in
    '' | *[!A-Za-z0-9._-]*) die "unusable name '$subdomain'" ;;
esac
case $value in
    '' | *[!A-Za-z0-9_-]*) die "unusable challenge value '$value'" ;;
esac

if ! answer=$(printf 'X-Api-User: %s\nX-Api-Key: %s\n' "$ACMEDNS_USERNAME" "$ACMEDNS_PASSWORD" |
    curl --silent --show-error --fail-with-body --max-time 30 \
        --header @- --header 'Content-Type: application/json' \
        --data "{\"subdomain\": \"$subdomain\", \"txt\": \"$value\"}" \
        "$ACMEDNS_UPDATE_URL"); then
    die "the update call to $ACMEDNS_UPDATE_URL for $subdomain failed: $answer"
fi
