#!/usr/bin/env bash
# Checks a running lab end to end, the way the tests use it (needs `up.sh` first):
#
#   bash test/lab/smoke.sh
#
# 1. A throwaway client container on ccp-lab-inet (label cloud-cli-proxy.lab=true, removed
#    afterwards) runs ccp-lab-smoke with lab.json: echo, canary and forbidden resolver directly; a
#    wireguard-go client through the lab's peer; v2ray as the client of every proxy server; dante's
#    UDP ASSOCIATE behaviour. See test/lab/image/bin/ccp-lab-smoke.
# 2. From this machine: the servers' logs show the client traffic the way the leak sentinel reads
#    them, and the canary API answers here too (as the worker calls it), but only after checking
#    that this machine routes the lab subnet to the lab's bridge.
# Prints PASS/FAIL lines and "N passed, N failed"; exit 1 on any failure.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_state_abs
[ -s "$LAB_STATE/lab.json" ] || lab_die "no $LAB_STATE/lab.json: run test/lab/up.sh first"
[ "$(docker inspect -f '{{.State.Running}}' "$LAB_ECHO_NAME" 2>/dev/null || true)" = true ] ||
  lab_die "$LAB_ECHO_NAME is not running: run test/lab/up.sh first"

PASS=0 FAIL=0
ok() { printf 'PASS %s\n' "$*"; PASS=$((PASS + 1)); }
ko() { printf 'FAIL %s\n' "$*"; FAIL=$((FAIL + 1)); }

SINCE=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
CLIENT=ccp-lab-smoke-$$
set +e
docker run --rm --name "$CLIENT" --label "$LAB_LABEL=true" --init --network "$LAB_INET_NET" \
  --cap-add NET_ADMIN --device /dev/net/tun \
  -v "$LAB_STATE/lab.json:/etc/ccp-lab-client/lab.json:ro" \
  -v "$LAB_STATE/srv/resolv.conf:/etc/resolv.conf:ro" \
  "$LAB_IMAGE" ccp-lab-smoke | tee /tmp/ccp-lab-smoke.$$
set -e
read -r P F < <(awk '/^[0-9]+ passed, [0-9]+ failed$/ { print $1, $3 }' /tmp/ccp-lab-smoke.$$)
rm -f /tmp/ccp-lab-smoke.$$
PASS=$((PASS + ${P:-0})) FAIL=$((FAIL + ${F:-1}))

# --- what the servers logged during the run (the leak sentinel's view) ---
logs() { docker logs --since "$SINCE" "$1" 2>&1; }
has() { grep -qE -- "$2" <<<"$1"; } # has TEXT REGEX
re() { printf '%s' "${1//./\\.}"; }  # an address as a regular expression

echo_log=$(logs "$LAB_ECHO_NAME")
for k in WG SS VMESS TROJAN SOCKS_UDP; do
  i="LAB_${k}_IP"
  if has "$echo_log" "udp $(re "${!i}"):"; then
    ok "log: the echo logged UDP from ${!i} ($k)"
  else
    ko "log: the echo logged no UDP from ${!i} ($k)"
  fi
done
# (dante relays the smoke's RFC-style UDP ASSOCIATE probe, so only tinyproxy is checked here.)
if has "$echo_log" "udp $(re "$LAB_HTTP_IP"):"; then
  ko "log: the echo logged UDP from $LAB_HTTP_IP (HTTP)"
else
  ok "log: the echo logged no UDP from $LAB_HTTP_IP (HTTP)"
fi
# checkd's request lines (JSON, one per request, CHECKD_LOG_REQUESTS=true): the HTTP echo and the
# canary's DNS queries, each with its source.
if has "$echo_log" "\"src\":\"$(re "$LAB_WG_IP")\".*\"msg\":\"http request\""; then
  ok "log: the echo's checkd logged the WireGuard caller's HTTP request"
else
  ko "log: the echo's checkd logged no HTTP request from $LAB_WG_IP"
fi
if has "$(logs "$LAB_DNS_NAME")" "\"src\":\"$(re "$LAB_WG_IP")\".*\"msg\":\"dns query\""; then
  ok "log: the canary's checkd logged the WireGuard peer's DNS query"
else
  ko "log: the canary's checkd logged no DNS query from $LAB_WG_IP"
fi
for k in WG SS VMESS TROJAN SOCKS SOCKS_UDP HTTP; do
  n="LAB_${k}_NAME"
  if has "$(logs "${!n}")" "client (tcp|udp) [0-9.]+:[0-9]+ -> :[0-9]+$"; then
    ok "log: ${!n} logged its client's source address"
  else
    ko "log: ${!n} logged no client"
  fi
done

# --- the canary API from this machine, as the worker calls it ---
dev=$(ip -4 route get "$LAB_DNS_IP" 2>/dev/null |
  awk '{ for (i = 1; i < NF; i++) if ($i == "dev") print $(i + 1) }')
if [[ $dev == br-* ]]; then
  url="http://$LAB_DNS_IP:$LAB_DNS_API_PORT/v1/canary/ccp-lab-ready.$LAB_DOMAIN"
  secret=$(sed -n 's/^CHECKD_API_SECRET=//p' "$LAB_STATE/srv/checkd.env")
  body=$(curl -s -m 5 -H "Authorization: Bearer $secret" "$url" || true)
  if has "$body" "\"sources\":\[\"$(re "$LAB_ECHO_IP")\"\]"; then
    ok "host: the canary API answers this machine: $body"
  else
    ko "host: canary API: '$body'"
  fi
  code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$url" || true)
  if [ "$code" = 401 ]; then
    ok "host: the canary API refuses a request without the secret (401)"
  else
    ko "host: the canary API answered $code without the secret"
  fi
else
  ko "host: $LAB_DNS_IP is not routed to a lab bridge here (dev '$dev'); not contacting it"
fi

printf 'smoke: total\n%d passed, %d failed\n' "$PASS" "$FAIL"
[ "$FAIL" = 0 ]
