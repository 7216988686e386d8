#!/usr/bin/env bash
# Leak sentinel (docs/egress.md#lab): prints every line of the echo, DNS canary and forbidden
# resolver logs whose *source* is one of the given addresses (typically a gateway's underlay
# address). Exit 1 when there is any such line (a leak), 0 when there is none.
#
#   bash test/lab/sentinel.sh [--since TIME] ADDRESS...
#
# TIME is anything `docker logs --since` takes (RFC 3339, Unix time, or "30s"). Source formats:
#   echo and canary (checkd, JSON): {…,"src":"<src>",…,"msg":"http request"|"dns query"}
#   echo (UDP):        <time> udp <src>:<port> len=N
#   resolver:          <time> dnsmasq[N]: <serial> <src>/<port> query[A] <name> from <src>
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SINCE=()
if [ "${1-}" = --since ]; then
  [ $# -ge 2 ] || lab_die "usage: $0 [--since TIME] ADDRESS..."
  SINCE=(--since "$2")
  shift 2
fi
[ $# -gt 0 ] || lab_die "usage: $0 [--since TIME] ADDRESS..."

pattern=""
for a in "$@"; do
  [[ $a =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || lab_die "not an IPv4 address: $a"
  re=${a//./\\.}
  pattern+="${pattern:+|}(http|udp) $re:|from $re\$|\"src\":\"$re\""
done

found=0
for name in "$LAB_ECHO_NAME" "$LAB_DNS_NAME" "$LAB_RESOLVER_NAME"; do
  out=$(docker logs "${SINCE[@]}" "$name" 2>&1) || lab_die "cannot read the logs of $name"
  hits=$(grep -E -- "$pattern" <<<"$out" || true)
  if [ -n "$hits" ]; then
    found=1
    sed "s/^/$name: /" <<<"$hits"
  fi
done
exit $found
