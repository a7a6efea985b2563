#!/bin/sh
# caddy-test-config STAGING DIR LIVE: tests the whole Caddy configuration with
# the staged files in place (roles/common's stage entry point runs it through
# `sh -c`, from the caddy role, tasks/main.yml). The staged Caddyfile, its
# imports of the role's directory DIR pointed at STAGING, is written next to
# the LIVE Caddyfile (its own relative imports resolve the same) and
# validated by Caddy. Caddy's messages name the real files, never a login hash.
set -eu
staging=$1 dir=$2 live=$3
test_conf=$(mktemp "${live%/*}/.opengram-deploy-test.XXXXXX")
trap 'rm -f "$test_conf"' EXIT
sed "s#^\([[:space:]]*import[[:space:]]\{1,\}\)$dir/#\1$staging/#" "$staging/Caddyfile" > "$test_conf"
rc=0
out=$(caddy validate --adapter caddyfile --config "$test_conf" 2>&1) || rc=$?
# Name the real files in Caddy's messages (and never quote a login hash).
printf '%s\n' "$out" | grep -v '^{"level":"info"' \
  | sed "s#$test_conf#$live#g; s#$staging/#$dir/#g; s#JDJ[A-Za-z0-9+/]\{77\}#<bcrypt hash, not shown>#g" >&2
exit $rc
