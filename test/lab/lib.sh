# Test lab: names, addresses and ports (docs/egress.md#lab), shared by up.sh, down.sh, smoke.sh
# and sentinel.sh. Sourced, not run. This is the only place that defines the lab's topology: up.sh
# writes it to $CCP_LAB_STATE/srv/topology.env for the programs inside the lab containers.
#
# Never change a subnet here to 192.0.2.0/24 (or any range this machine itself uses): a Docker
# bridge on the machine's own subnet takes over its routes. up.sh refuses such a subnet.

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$LAB_DIR/../.." && pwd)"

LAB_IMAGE=cloud-cli-proxy/lab:latest
LAB_BASE_IMAGE=cloud-cli-proxy/base:bookworm
LAB_HASH_LABEL=cloud-cli-proxy.content-hash
LAB_LABEL=cloud-cli-proxy.lab           # =true on every lab container and network
LAB_SPEC_LABEL=cloud-cli-proxy.lab.spec # hash of a container's image, arguments and configuration

# State: secrets, server configurations, lab.json, egress.env (mode 0700).
LAB_STATE=${CCP_LAB_STATE:-/tmp/ccp-lab}

# Simulated internet: --internal, inter-container communication on. Fixed addresses (the servers)
# are below .128; Docker hands out .128-.254 to everything else (gateways, test clients), so a
# stopped lab server's address is never taken by another container.
LAB_INET_NET=ccp-lab-inet
LAB_INET_SUBNET=203.0.113.0/24
LAB_INET_GATEWAY=203.0.113.1
LAB_INET_DYNAMIC=203.0.113.128/25
# Management network of the tests: --internal, inter-container communication off. The spec's
# table says 192.0.2.0/24, which is this dev machine's own LAN; 198.18.0.0/24 (RFC 2544
# benchmarking range) is used instead.
LAB_MGMT_NET=ccp-lab-mgmt
LAB_MGMT_SUBNET=198.18.0.0/24
LAB_MGMT_GATEWAY=198.18.0.1
# WireGuard tunnel addresses (inside the tunnel only).
LAB_TUNNEL_SUBNET=198.51.100.0/24
LAB_WG_PEER_TUNNEL=198.51.100.1
LAB_WG_CLIENT_TUNNEL=198.51.100.2

LAB_DOMAIN=egress.test
LAB_TROJAN_SNI=trojan.egress.test
LAB_SS_METHOD=chacha20-ietf-poly1305

LAB_ECHO_NAME=ccp-lab-echo;           LAB_ECHO_IP=203.0.113.10
LAB_ECHO_HTTP_PORT=80;                LAB_ECHO_UDP_PORT=9999
LAB_DNS_NAME=ccp-lab-dns;             LAB_DNS_IP=203.0.113.53;       LAB_DNS_API_PORT=8053
LAB_RESOLVER_NAME=ccp-lab-resolver;   LAB_RESOLVER_IP=203.0.113.54
LAB_WG_NAME=ccp-lab-wg;               LAB_WG_IP=203.0.113.20;        LAB_WG_PORT=51820
LAB_SS_NAME=ccp-lab-ss;               LAB_SS_IP=203.0.113.21;        LAB_SS_PORT=8388
LAB_VMESS_NAME=ccp-lab-vmess;         LAB_VMESS_IP=203.0.113.22;     LAB_VMESS_PORT=10086
LAB_TROJAN_NAME=ccp-lab-trojan;       LAB_TROJAN_IP=203.0.113.23;    LAB_TROJAN_PORT=443
LAB_SOCKS_NAME=ccp-lab-socks;         LAB_SOCKS_IP=203.0.113.24;     LAB_SOCKS_PORT=1080
LAB_HTTP_NAME=ccp-lab-http;           LAB_HTTP_IP=203.0.113.25;      LAB_HTTP_PORT=8888
LAB_SOCKS_UDP_NAME=ccp-lab-socks-udp; LAB_SOCKS_UDP_IP=203.0.113.26; LAB_SOCKS_UDP_PORT=1080

# Keys of the servers, in start order.
LAB_SERVERS=(ECHO DNS RESOLVER WG SS VMESS TROJAN SOCKS SOCKS_UDP HTTP)

# The IP echo and the DNS canary are the product's own egress check service, `node dist/main.js
# checkd` (README "Deploying the egress check service (checkd)"), run in lab containers with this
# machine's node binary and the repository's dist/ and node_modules/ mounted read-only (and
# drizzle/migrations, which marks the package root that dist/main.js looks for). Two
# instances: the echo's HTTP at 203.0.113.10:80 (its DNS only on the container's loopback), and
# the canary's DNS at 203.0.113.53:53 with its query API at :8053. Both log every request with
# its source ("src") for the leak sentinel. CHECKD_API_SECRET comes from srv/checkd.env.
LAB_CHECKD_NODE=$(readlink -f "$(command -v node 2>/dev/null || echo /nonexistent)")
lab_checkd_args() { # $1: HTTP listen address, $2: DNS listen address
  EXTRA=(-v "$LAB_CHECKD_NODE:/usr/local/bin/node:ro" -v "$REPO_DIR/dist:/opt/ccp/dist:ro"
    -v "$REPO_DIR/node_modules:/opt/ccp/node_modules:ro" -v "$REPO_DIR/package.json:/opt/ccp/package.json:ro"
    -v "$REPO_DIR/drizzle/migrations:/opt/ccp/drizzle/migrations:ro"
    --env-file "$LAB_STATE/srv/checkd.env" -e "CHECKD_ZONE=$LAB_DOMAIN" -e "CHECKD_ANSWER_IPV4=$LAB_ECHO_IP"
    -e "CHECKD_HTTP_LISTEN_ADDR=$1" -e "CHECKD_DNS_LISTEN_ADDR=$2" -e CHECKD_LOG_REQUESTS=true
    --label "cloud-cli-proxy.lab.checkd=${LAB_CHECKD_HASH:-}")
}

# lab_command KEY — sets CMD (the container's command) and EXTRA (extra `docker run` arguments).
# Every server that accepts clients runs under ccp-lab-serve, which logs each client's source
# address ("client tcp|udp SRC:PORT -> :PORT"); echo and DNS log their callers themselves.
lab_command() {
  EXTRA=()
  case $1 in
    ECHO)
      lab_checkd_args ":$LAB_ECHO_HTTP_PORT" "127.0.0.1:53"
      CMD=(ccp-lab-checkd --udp-echo "$LAB_ECHO_UDP_PORT")
      ;;
    DNS)
      lab_checkd_args "$LAB_DNS_IP:$LAB_DNS_API_PORT" "$LAB_DNS_IP:53"
      CMD=(ccp-lab-checkd)
      ;;
    RESOLVER) CMD=(ccp-lab-dns --listen "$LAB_RESOLVER_IP" --any --answer "$LAB_ECHO_IP"
      --log-name resolver) ;;
    WG)
      CMD=(ccp-lab-serve "udp/$LAB_WG_PORT" -- ccp-lab-wg-peer)
      EXTRA=(--cap-add NET_ADMIN --device /dev/net/tun --sysctl net.ipv4.ip_forward=1)
      ;;
    SS) CMD=(ccp-lab-serve "tcp/$LAB_SS_PORT,udp/$LAB_SS_PORT" --
      ss-server -c /etc/ccp-lab/ss.json -u -v) ;;
    VMESS) CMD=(ccp-lab-serve "tcp/$LAB_VMESS_PORT" -- v2ray -config /etc/ccp-lab/vmess.json) ;;
    TROJAN) CMD=(ccp-lab-serve "tcp/$LAB_TROJAN_PORT" -- trojan -c /etc/ccp-lab/trojan.json) ;;
    SOCKS) CMD=(ccp-lab-serve "tcp/$LAB_SOCKS_PORT" -- danted -f /etc/ccp-lab/danted.conf) ;;
    SOCKS_UDP) CMD=(ccp-lab-serve "tcp/$LAB_SOCKS_UDP_PORT" --
      v2ray -config /etc/ccp-lab/socks-udp.json) ;;
    HTTP) CMD=(ccp-lab-serve "tcp/$LAB_HTTP_PORT" -- tinyproxy -d -c /etc/ccp-lab/tinyproxy.conf) ;;
    *) return 1 ;;
  esac
}

# The topology as KEY=VALUE lines, for the programs in the image.
lab_topology_env() {
  local v
  for v in LAB_IMAGE LAB_LABEL LAB_INET_NET LAB_INET_SUBNET LAB_INET_GATEWAY LAB_INET_DYNAMIC \
    LAB_MGMT_NET LAB_MGMT_SUBNET LAB_MGMT_GATEWAY LAB_TUNNEL_SUBNET LAB_WG_PEER_TUNNEL \
    LAB_WG_CLIENT_TUNNEL LAB_DOMAIN LAB_TROJAN_SNI LAB_SS_METHOD LAB_ECHO_HTTP_PORT \
    LAB_ECHO_UDP_PORT LAB_DNS_API_PORT; do
    printf '%s=%s\n' "$v" "${!v}"
  done
  for v in "${LAB_SERVERS[@]}"; do
    local n="LAB_${v}_NAME" i="LAB_${v}_IP" p="LAB_${v}_PORT"
    printf '%s=%s\n%s=%s\n' "$n" "${!n}" "$i" "${!i}"
    [ -n "${!p-}" ] && printf '%s=%s\n' "$p" "${!p}"
  done
  return 0
}

lab_say() { printf 'lab: %s\n' "$*"; }
lab_die() { printf 'lab: error: %s\n' "$*" >&2; exit 1; }
lab_now() { date +%s.%N; }
lab_elapsed() { awk -v a="$1" -v b="$(lab_now)" 'BEGIN { printf "%.1fs", b - a }'; }

# One up.sh / down.sh at a time on this machine.
lab_lock() {
  local f=/var/lock/ccp-lab.lock
  { : >>"$f"; } 2>/dev/null || f="${TMPDIR:-/tmp}/ccp-lab-$(id -u).lock"
  if command -v flock >/dev/null 2>&1; then
    exec 8>>"$f"
    flock 8
  fi
}

lab_state_abs() {
  case $LAB_STATE in
    /*) ;;
    *) LAB_STATE="$PWD/$LAB_STATE" ;;
  esac
  case $LAB_STATE in
    *[:,]* | / | "") lab_die "CCP_LAB_STATE must be an absolute path without ':' or ',' (got '$LAB_STATE')" ;;
  esac
  LAB_STATE=${LAB_STATE%/}
}
