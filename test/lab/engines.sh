#!/usr/bin/env bash
# Extra Docker engines for the multi-engine tests (issue 13), each a real `dockerd` in its own
# network namespace, reachable over TCP with mutual TLS, with a management subnet routed from this
# machine's root namespace. See test/lab/README.md "Extra Docker engines" for the address scheme,
# the firewall and the timings.
#
#   bash test/lab/engines.sh up N [--images "img1 img2 …"]   engines eng1..engN (idempotent)
#   bash test/lab/engines.sh status                            what runs (JSON, as engines.json)
#   bash test/lab/engines.sh down [engK …] [--purge]           stop all (or the named) engines
#
# down keeps the certificates and, by default (--keep-data), each engine's data-root, so the next up
# is quick (images and networks already there). --purge removes data-roots and certificates too.
#
# Needs root, iproute2, nsenter (util-linux), dockerd, iptables and openssl. Never touches the
# main engine (/var/run/docker.sock) except to `docker save` images from it, nor the test lab.
set -euo pipefail

ENG_STATE=${CCP_ENGINES_STATE:-/var/lib/ccp-engines}
ENG_RUN=/run                # runtime dir of engine n: /run/ccp-eng<n>/
ENG_MAX=16
ENG_VETH_NET=198.19.250     # /30 per engine: .4(n-1)+1 root side, .4(n-1)+2 engine side
ENG_PORT=2376
ENG_MGMT_NETWORK=ccp-eng-mgmt
ENG_UNDERLAY_NETWORK=ccp-eng-underlay
ENG_LABEL=cloud-cli-proxy.engines
ENG_ROOT_CHAIN=CCP-ENGINES  # root namespace: forwarded traffic to/from the engines' veths
ENG_NS_FWD=CCP-ENGINE-FWD   # engine namespace: forwarded traffic (containers <-> outside)
ENG_NS_SNAT=CCP-ENGINE-SNAT # engine namespace (nat): control plane -> management subnet, from the bridge gateway
ENG_NS_IN=CCP-ENGINE-IN     # engine namespace: traffic to the engine namespace itself
ENG_DEFAULT_IMAGES="cloud-cli-proxy/base:bookworm cloud-cli-proxy/gateway:latest cloud-cli-proxy/host:latest"
ENG_START_TIMEOUT=${CCP_ENGINES_START_TIMEOUT:-90}

say() { printf 'engines: %s\n' "$*" >&2; }
die() { printf 'engines: error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

# ---- addresses (the scheme; README "Extra Docker engines") -----------------------------------
eng_cp_ip() { echo "$ENG_VETH_NET.$((4 * ($1 - 1) + 1))"; }     # root side = the control plane
eng_ip() { echo "$ENG_VETH_NET.$((4 * ($1 - 1) + 2))"; }        # engine side (dockerd's TCP)
eng_veth_net() { echo "$ENG_VETH_NET.$((4 * ($1 - 1)))/30"; }
eng_mgmt_subnet() { echo "198.19.$((10 + $1)).0/24"; }          # routed from the root namespace
eng_mgmt_gateway() { echo "198.19.$((10 + $1)).1"; }
eng_bip() { echo "198.19.$((100 + $1)).1/26"; }                 # docker0 inside the engine, not routed
eng_pool() { echo "198.19.$((100 + $1)).64/26"; }               # other networks (/28 each), not routed
eng_underlay_subnet() { echo "198.19.$((100 + $1)).128/25"; }   # the gateways' underlay: 125 hosts, not routed
eng_underlay_gateway() { echo "198.19.$((100 + $1)).129"; }
eng_ns() { echo "ccp-eng$1"; }
eng_veth() { echo "ccpe$1"; }
eng_rundir() { echo "$ENG_RUN/ccp-eng$1"; }
eng_sock() { echo "$(eng_rundir "$1")/docker.sock"; }
eng_datadir() { echo "$ENG_STATE/eng$1"; }
in_ns() { local n=$1; shift; nsenter --net="/run/netns/$(eng_ns "$n")" "$@"; }
edocker() { local n=$1; shift; docker -H "unix://$(eng_sock "$n")" "$@"; }

# Retry a command a few times (this machine is sometimes slow to settle netlink and iptables).
retry() {
  local tries=$1 i; shift
  for ((i = 1; ; i++)); do
    "$@" && return 0
    [ "$i" -lt "$tries" ] || return 1
    sleep 0.5
  done
}

preflight() {
  [ "$(id -u)" = 0 ] || die "must run as root (network namespaces, dockerd)"
  local c
  for c in ip nsenter dockerd docker iptables openssl flock setsid jq; do
    command -v "$c" >/dev/null 2>&1 || die "'$c' not found: this machine cannot run extra Docker engines"
  done
  mkdir -p "$ENG_STATE" /run/netns
  chmod 0700 "$ENG_STATE"
  exec 9>>/var/lock/ccp-engines.lock
  flock 9
}

engine_ids() { # engines that have a netns or a runtime dir (running or half set up)
  {
    ip netns list 2>/dev/null | awk '{ print $1 }' | sed -n 's/^ccp-eng\([0-9]\+\)$/\1/p'
    for d in "$ENG_RUN"/ccp-eng*; do
      if [ -d "$d" ]; then basename "$d" | sed -n 's/^ccp-eng\([0-9]\+\)$/\1/p'; fi
    done
  } | sort -n -u
  return 0
}

dockerd_pid() { # pid of engine n's dockerd if it runs
  local f pid
  f="$(eng_rundir "$1")/dockerd.pid"
  [ -f "$f" ] || return 1
  pid=$(cat "$f" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -d "/proc/$pid" ] && grep -q dockerd "/proc/$pid/comm" 2>/dev/null && echo "$pid"
}

engine_answers() { timeout 10 docker -H "unix://$(eng_sock "$1")" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# ---- certificates ------------------------------------------------------------------------------
ensure_ca() {
  local d="$ENG_STATE/certs"
  mkdir -p "$d"; chmod 0700 "$d"
  if [ ! -s "$d/ca.pem" ] || [ ! -s "$d/ca-key.pem" ]; then
    openssl ecparam -name prime256v1 -genkey -noout -out "$d/ca-key.pem" 2>/dev/null
    openssl req -x509 -new -key "$d/ca-key.pem" -sha256 -days 3650 -subj "/CN=ccp-engines test CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -out "$d/ca.pem" 2>/dev/null
    rm -f "$d"/client-*.pem "$d"/eng*/server-*.pem
    say "new CA in $d"
  fi
  if [ ! -s "$d/client-cert.pem" ] || [ ! -s "$d/client-key.pem" ]; then
    issue_cert "$d/client" "/CN=ccp-control-plane" "extendedKeyUsage=clientAuth"
  fi
}

issue_cert() { # $1 prefix (writes $1-key.pem, $1-cert.pem), $2 subject, $3.. extensions
  local p=$1 subj=$2 ext; shift 2
  local d="$ENG_STATE/certs" extfile
  extfile=$(mktemp)
  for ext in "$@"; do echo "$ext" >>"$extfile"; done
  openssl ecparam -name prime256v1 -genkey -noout -out "$p-key.pem" 2>/dev/null
  openssl req -new -key "$p-key.pem" -subj "$subj" -out "$p.csr" 2>/dev/null
  openssl x509 -req -in "$p.csr" -CA "$d/ca.pem" -CAkey "$d/ca-key.pem" -CAcreateserial -days 3650 \
    -sha256 -extfile "$extfile" -out "$p-cert.pem" 2>/dev/null
  rm -f "$p.csr" "$extfile"
  chmod 0600 "$p-key.pem"
}

ensure_server_cert() {
  local n=$1 d="$ENG_STATE/certs/eng$1" ip
  ip=$(eng_ip "$n")
  mkdir -p "$d"
  if [ ! -s "$d/server-cert.pem" ] || [ ! -s "$d/server-key.pem" ] ||
    ! openssl x509 -in "$d/server-cert.pem" -noout -ext subjectAltName 2>/dev/null | grep -q "IP Address:$ip\$"; then
    issue_cert "$d/server" "/CN=eng$n" "subjectAltName=IP:$ip" "extendedKeyUsage=serverAuth"
  fi
}

# ---- network -----------------------------------------------------------------------------------
ensure_root_chain() { # forwarded traffic in the root namespace never enters or leaves an engine
  local parent=DOCKER-USER
  iptables -S DOCKER-USER >/dev/null 2>&1 || parent=FORWARD
  iptables -N "$ENG_ROOT_CHAIN" 2>/dev/null || true
  iptables -C "$ENG_ROOT_CHAIN" -o 'ccpe+' -j DROP 2>/dev/null || iptables -A "$ENG_ROOT_CHAIN" -o 'ccpe+' -j DROP
  iptables -C "$ENG_ROOT_CHAIN" -i 'ccpe+' -j DROP 2>/dev/null || iptables -A "$ENG_ROOT_CHAIN" -i 'ccpe+' -j DROP
  iptables -C "$parent" -j "$ENG_ROOT_CHAIN" 2>/dev/null || iptables -I "$parent" 1 -j "$ENG_ROOT_CHAIN"
}

remove_root_chain() {
  local parent
  for parent in DOCKER-USER FORWARD; do
    while iptables -D "$parent" -j "$ENG_ROOT_CHAIN" 2>/dev/null; do :; done
  done
  iptables -F "$ENG_ROOT_CHAIN" 2>/dev/null || true
  iptables -X "$ENG_ROOT_CHAIN" 2>/dev/null || true
}

check_no_conflict() { # the engine's root-side addresses and routes must be ours or free
  local n=$1 veth subnet r
  veth=$(eng_veth "$n"); subnet=$(eng_mgmt_subnet "$n")
  r=$(ip -4 route show exact "$subnet" 2>/dev/null || true)
  # Ours: through the engine's veth, or the blackhole `down` leaves while it is away.
  if [ -n "$r" ] && ! grep -qE "dev $veth|^blackhole" <<<"$r"; then
    die "route for $subnet exists and is not engine $n's ($r): a Docker network on the main engine or another lab uses it"
  fi
  r=$(ip -4 -o addr show to "$(eng_cp_ip "$n")/30" 2>/dev/null | awk '{ print $2 }' | grep -v "^$veth\$" || true)
  [ -z "$r" ] || die "$(eng_cp_ip "$n")/30 is already used by interface $r"
}

ensure_netns() {
  local n=$1 ns veth cp ip
  ns=$(eng_ns "$n"); veth=$(eng_veth "$n"); cp=$(eng_cp_ip "$n"); ip=$(eng_ip "$n")
  check_no_conflict "$n"
  ip route del blackhole "$(eng_veth_net "$n")" 2>/dev/null || true
  [ -e "/run/netns/$ns" ] || retry 3 ip netns add "$ns"
  if ! ip link show "$veth" >/dev/null 2>&1; then
    retry 3 ip link add "$veth" type veth peer name eth0 netns "$ns"
  fi
  ip -4 addr show dev "$veth" | grep -q "inet $cp/30" || retry 3 ip addr add "$cp/30" dev "$veth"
  retry 3 ip link set "$veth" up
  in_ns "$n" ip link set lo up
  in_ns "$n" ip -4 addr show dev eth0 | grep -q "inet $ip/30" || retry 3 in_ns "$n" ip addr add "$ip/30" dev eth0
  retry 3 in_ns "$n" ip link set eth0 up
  # No default route in the engine: it reaches only its /30, so nothing on it can get past the
  # control plane's address even if the firewall below were gone.
  in_ns "$n" sysctl -qw net.ipv4.ip_forward=1
  retry 3 ip route replace "$(eng_mgmt_subnet "$n")" via "$ip" dev "$veth"
}

# The engine namespace's own firewall (iptables, the nf_tables backend this machine has, the same
# tool the engine's dockerd uses there). Forwarded traffic is filtered in DOCKER-USER, which dockerd
# keeps first in FORWARD; traffic to the namespace itself in a chain first in INPUT.
ensure_ns_firewall() {
  local n=$1 cp mgmt gw
  cp=$(eng_cp_ip "$n"); mgmt=$(eng_mgmt_subnet "$n"); gw=$(eng_mgmt_gateway "$n")
  # One atomic iptables-restore: declaring a chain with --noflush empties just that chain.
  in_ns "$n" iptables-restore --noflush <<EOF
*filter
:DOCKER-USER - [0:0]
:$ENG_NS_FWD - [0:0]
:$ENG_NS_IN - [0:0]
-A DOCKER-USER -j $ENG_NS_FWD
-A DOCKER-USER -j RETURN
-A $ENG_NS_FWD -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
-A $ENG_NS_FWD -i eth0 -s $cp -d $mgmt -j ACCEPT
-A $ENG_NS_FWD -i eth0 -j DROP
-A $ENG_NS_FWD -o eth0 -j DROP
-A $ENG_NS_IN -i lo -j ACCEPT
-A $ENG_NS_IN -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A $ENG_NS_IN -i eth0 -s $cp -p tcp --dport $ENG_PORT -j ACCEPT
-A $ENG_NS_IN -i eth0 -s $cp -p icmp -j ACCEPT
-A $ENG_NS_IN -j DROP
COMMIT
*nat
:$ENG_NS_SNAT - [0:0]
-A $ENG_NS_SNAT -s $cp -d $mgmt -j SNAT --to-source $gw
COMMIT
EOF
  # The control plane's connections into the management subnet leave the engine's bridge from the
  # bridge's own gateway address (docs/engines.md#reachability): a host's kill switch admits
  # management traffic from that one address on every engine, exactly as on a single machine, and
  # its replies stay on the bridge. First in POSTROUTING, before dockerd's masquerade.
  in_ns "$n" iptables -t nat -C POSTROUTING -j "$ENG_NS_SNAT" 2>/dev/null || in_ns "$n" iptables -t nat -I POSTROUTING 1 -j "$ENG_NS_SNAT"
  # dockerd puts its jump to DOCKER-USER first in FORWARD when it starts; before that, ours does.
  in_ns "$n" iptables -C FORWARD -j DOCKER-USER 2>/dev/null || in_ns "$n" iptables -I FORWARD 1 -j DOCKER-USER
  in_ns "$n" iptables -C INPUT -j "$ENG_NS_IN" 2>/dev/null || in_ns "$n" iptables -I INPUT 1 -j "$ENG_NS_IN"
}

# ---- dockerd -----------------------------------------------------------------------------------
start_dockerd() {
  local n=$1 run data certs ip attempt pid t
  run=$(eng_rundir "$n"); data=$(eng_datadir "$n")/docker; certs="$ENG_STATE/certs"; ip=$(eng_ip "$n")
  mkdir -p "$run" "$data"
  if dockerd_pid "$n" >/dev/null && engine_answers "$n"; then
    echo running
    return 0
  fi
  t=$(now)
  for attempt in 1 2; do
    if pid=$(dockerd_pid "$n"); then # alive but not answering: give it a chance, then restart
      stop_dockerd "$n"
    fi
    rm -f "$run/dockerd.pid" "$run/docker.sock"
    echo '{}' >"$run/daemon.json"
    setsid nsenter --net="/run/netns/$(eng_ns "$n")" dockerd \
      --config-file "$run/daemon.json" \
      --data-root "$data" --exec-root "$run/exec" --pidfile "$run/dockerd.pid" \
      -H "unix://$run/docker.sock" -H "tcp://$ip:$ENG_PORT" \
      --tlsverify --tlscacert "$certs/ca.pem" \
      --tlscert "$certs/eng$n/server-cert.pem" --tlskey "$certs/eng$n/server-key.pem" \
      --storage-driver=overlay2 --cgroup-parent="/ccp-eng$n" --iptables=true --ip-forward=true \
      --bip "$(eng_bip "$n")" --default-address-pool "base=$(eng_pool "$n"),size=28" \
      --shutdown-timeout 5 \
      </dev/null >>"$run/dockerd.log" 2>&1 9>&- &
    disown || true
    local end=$((SECONDS + ENG_START_TIMEOUT))
    while [ "$SECONDS" -lt "$end" ]; do
      if engine_answers "$n"; then
        echo "started($(elapsed "$t"))"
        return 0
      fi
      sleep 0.3
    done
    say "eng$n: dockerd did not answer within ${ENG_START_TIMEOUT}s (attempt $attempt); log: $run/dockerd.log"
    tail -n 15 "$run/dockerd.log" | sed "s/^/engines:   eng$n: /" >&2 || true
  done
  return 1
}

stop_dockerd() {
  local n=$1 pid end
  pid=$(dockerd_pid "$n") || return 0
  kill -TERM "$pid" 2>/dev/null || true
  end=$((SECONDS + 40))
  while [ -d "/proc/$pid" ] && [ "$SECONDS" -lt "$end" ]; do sleep 0.2; done
  if [ -d "/proc/$pid" ]; then
    say "eng$n: dockerd $pid did not stop, killing it"
    kill -KILL "$pid" 2>/dev/null || true
    while [ -d "/proc/$pid" ]; do sleep 0.2; done
  fi
}

ensure_mgmt_network() {
  local n=$1 subnet have
  subnet=$(eng_mgmt_subnet "$n")
  have=$(edocker "$n" network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' "$ENG_MGMT_NETWORK" 2>/dev/null || true)
  [ "$have" = "$subnet" ] && return 0
  [ -z "$have" ] || edocker "$n" network rm "$ENG_MGMT_NETWORK" >/dev/null
  # Not --internal: Docker's internal-network rules would also drop the control plane's traffic.
  # The namespace firewall (ensure_ns_firewall) does the isolation instead. ICC off, like the lab's
  # ccp-lab-mgmt: containers on it cannot reach each other.
  retry 3 edocker "$n" network create --driver bridge --subnet "$subnet" --gateway "$(eng_mgmt_gateway "$n")" \
    -o com.docker.network.bridge.enable_icc=false -o com.docker.network.bridge.name="ccpm$n" \
    --label "$ENG_LABEL=true" "$ENG_MGMT_NETWORK" >/dev/null
}

# The workers' EGRESS_UNDERLAY_NETWORK on the engines. Made here rather than by the first worker
# with Docker's default pool, whose /28s hold 13 gateways: the chaos stage puts 18 hosts on each
# engine (docs/chaos.md). One left by an older version with another subnet is replaced when empty.
ensure_underlay_network() {
  local n=$1 subnet have
  subnet=$(eng_underlay_subnet "$n")
  have=$(edocker "$n" network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' "$ENG_UNDERLAY_NETWORK" 2>/dev/null || true)
  [ "$have" = "$subnet" ] && return 0
  if [ -n "$have" ] && ! edocker "$n" network rm "$ENG_UNDERLAY_NETWORK" >/dev/null 2>&1; then
    say "eng$n: $ENG_UNDERLAY_NETWORK has subnet $have and containers attached; left as it is"
    return 0
  fi
  retry 3 edocker "$n" network create --driver bridge --subnet "$subnet" --gateway "$(eng_underlay_gateway "$n")" \
    --label "$ENG_LABEL=true" "$ENG_UNDERLAY_NETWORK" >/dev/null
}

# ---- images ------------------------------------------------------------------------------------
image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }
eimage_id() { edocker "$1" image inspect -f '{{.Id}}' "$2" 2>/dev/null || true; }

copy_images() { # $1: space-separated images; remaining args: engine numbers
  local images=$1 img id need n t tar ok; shift
  for img in $images; do
    id=$(image_id "$img")
    [ -n "$id" ] || die "image $img is not on the main engine (build it: deploy/images/build.sh)"
    need=()
    for n in "$@"; do [ "$(eimage_id "$n" "$img")" = "$id" ] || need+=("$n"); done
    if [ ${#need[@]} -eq 0 ]; then
      say "$img: already on $(printf 'eng%s ' "$@")(${id:7:12})"
      continue
    fi
    t=$(now)
    ok=0
    for attempt in 1 2 3; do
      if [ ${#need[@]} -eq 1 ]; then
        docker save "$img" | edocker "${need[0]}" load -q >/dev/null && ok=1
      else # one save, loaded by each engine in parallel
        tar="$ENG_STATE/.save-$$.tar"
        if docker save -o "$tar" "$img"; then
          local pids=() rc=0
          for n in "${need[@]}"; do edocker "$n" load -q -i "$tar" >/dev/null & pids+=($!); done
          for p in "${pids[@]}"; do wait "$p" || rc=1; done
          [ "$rc" = 0 ] && ok=1
        fi
        rm -f "$tar"
      fi
      for n in "${need[@]}"; do [ "$(eimage_id "$n" "$img")" = "$id" ] || ok=0; done
      [ "$ok" = 1 ] && break
      say "$img: copy attempt $attempt failed, retrying"
    done
    [ "$ok" = 1 ] || die "$img: could not copy to $(printf 'eng%s ' "${need[@]}")(image ID mismatch)"
    say "$img: copied to $(printf 'eng%s ' "${need[@]}")in $(elapsed "$t") (${id:7:12}, IDs match)"
  done
}

# ---- status ------------------------------------------------------------------------------------
engine_json() {
  local n=$1 certs="$ENG_STATE/certs" running=false
  dockerd_pid "$n" >/dev/null && engine_answers "$n" && running=true
  jq -n --arg id "eng$n" --argjson n "$n" --argjson running "$running" \
    --arg netns "$(eng_ns "$n")" --arg veth "$(eng_veth "$n")" \
    --arg address "$(eng_ip "$n")" --arg cp "$(eng_cp_ip "$n")" --argjson port "$ENG_PORT" \
    --arg sock "$(eng_sock "$n")" --arg subnet "$(eng_mgmt_subnet "$n")" --arg gw "$(eng_mgmt_gateway "$n")" \
    --arg net "$ENG_MGMT_NETWORK" --arg data "$(eng_datadir "$n")/docker" --arg run "$(eng_rundir "$n")" \
    --arg ca "$certs/ca.pem" --arg cert "$certs/client-cert.pem" --arg key "$certs/client-key.pem" \
    '{id: $id, index: $n, running: $running, netns: $netns, veth: $veth, address: $address,
      controlPlaneAddress: $cp, dockerHost: "tcp://\($address):\($port)", socketPath: $sock,
      mgmt: {network: $net, subnet: $subnet, gateway: $gw},
      tls: {ca: $ca, cert: $cert, key: $key}, dataRoot: $data, runDir: $run,
      log: "\($run)/dockerd.log"}'
}

status_json() {
  local n out=()
  for n in $(engine_ids); do out+=("$(engine_json "$n")"); done
  if [ ${#out[@]} -eq 0 ]; then
    jq -n --arg s "$ENG_STATE" '{version: 1, stateDir: $s, engines: []}'
  else
    printf '%s\n' "${out[@]}" | jq -s --arg s "$ENG_STATE" '{version: 1, stateDir: $s, engines: .}'
  fi
}

# ---- commands ----------------------------------------------------------------------------------
cmd_up() {
  local count="" images=$ENG_DEFAULT_IMAGES n t0 r summary=""
  while [ $# -gt 0 ]; do
    case $1 in
      --images) images=$2; shift 2 ;;
      --images=*) images=${1#--images=}; shift ;;
      [0-9]*) count=$1; shift ;;
      *) die "usage: engines.sh up N [--images \"img …\"]" ;;
    esac
  done
  [[ "$count" =~ ^[0-9]+$ ]] && [ "$count" -ge 1 ] && [ "$count" -le "$ENG_MAX" ] || die "up needs a count 1..$ENG_MAX"
  preflight
  timeout 15 docker info >/dev/null 2>&1 || die "the main Docker engine does not answer (docker info)"
  t0=$(now)
  ensure_ca
  ensure_root_chain
  local ns=()
  for ((n = 1; n <= count; n++)); do
    ensure_server_cert "$n"
    ensure_netns "$n"
    ensure_ns_firewall "$n"
    ns+=("$n")
  done
  # dockerd start in parallel (each one takes a few seconds on a cold data-root)
  local work; work=$(mktemp -d)
  for n in "${ns[@]}"; do (start_dockerd "$n" >"$work/$n" 2>"$work/$n.err" || echo failed >"$work/$n") & done
  wait
  local failed=""
  for n in "${ns[@]}"; do
    r=$(cat "$work/$n"); summary+=" eng$n:$r"
    [ "$r" != failed ] || { failed+=" eng$n"; cat "$work/$n.err" >&2; }
  done
  rm -rf "$work"
  [ -z "$failed" ] || die "could not start:$failed"
  for n in "${ns[@]}"; do
    # dockerd keeps DOCKER-USER's rules; set them again only if they are gone.
    { in_ns "$n" iptables -C DOCKER-USER -j "$ENG_NS_FWD" && in_ns "$n" iptables -t nat -C POSTROUTING -j "$ENG_NS_SNAT"; } 2>/dev/null || ensure_ns_firewall "$n"
    ensure_mgmt_network "$n"
    ensure_underlay_network "$n"
  done
  say "dockerd:$summary"
  [ -z "$images" ] || copy_images "$images" "${ns[@]}"
  status_json >"$ENG_STATE/engines.json"
  say "up in $(elapsed "$t0"): $ENG_STATE/engines.json"
  cat "$ENG_STATE/engines.json"
}

down_one() {
  local n=$1 purge=$2 keep=$3 ns veth
  ns=$(eng_ns "$n"); veth=$(eng_veth "$n")
  stop_dockerd "$n"
  ip route del "$(eng_mgmt_subnet "$n")" via "$(eng_ip "$n")" 2>/dev/null || true
  ip link del "$veth" 2>/dev/null || true
  # While it is away its addresses must not follow the default route off this machine (a worker
  # still dialing it would reach whatever answers out there; CI once got a foreign TLS certificate):
  # blackholed until `up` takes them back.
  ip route replace blackhole "$(eng_veth_net "$n")"
  ip route replace blackhole "$(eng_mgmt_subnet "$n")"
  [ ! -e "/run/netns/$ns" ] || retry 3 ip netns del "$ns" || say "eng$n: could not delete netns $ns"
  # dockerd unmounts its layers on a clean stop; anything left (a killed dockerd) goes here.
  local m
  for m in $(awk -v a="$(eng_datadir "$n")/" -v b="$(eng_rundir "$n")/" 'index($2, a) == 1 || index($2, b) == 1 { print $2 }' /proc/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$(eng_rundir "$n")"
  if [ "$purge" = 1 ] || [ "$keep" = 0 ]; then rm -rf "$(eng_datadir "$n")"; fi
  say "eng$n: down"
}

cmd_down() {
  local purge=0 keep=1 only=() n
  for a in "$@"; do
    case $a in
      --purge) purge=1 ;;
      --keep-data) keep=1 ;;
      --no-keep-data) keep=0 ;;
      eng[0-9]*) only+=("${a#eng}") ;;
      *) die "usage: engines.sh down [engN …] [--keep-data|--no-keep-data] [--purge]" ;;
    esac
  done
  preflight
  local ids
  if [ ${#only[@]} -gt 0 ]; then ids="${only[*]}"; else ids=$(engine_ids); fi
  for n in $ids; do down_one "$n" "$purge" "$keep" & done
  wait
  if [ -z "$(engine_ids)" ]; then
    remove_root_chain
    if [ "$purge" = 1 ]; then rm -rf "$ENG_STATE"; say "purged $ENG_STATE"; fi
  elif [ "$purge" = 1 ]; then
    say "other engines still run: kept $ENG_STATE/certs"
  fi
  [ ! -d "$ENG_STATE" ] || status_json >"$ENG_STATE/engines.json"
}

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  status)
    [ "$(id -u)" = 0 ] || die "must run as root"
    command -v jq >/dev/null 2>&1 || die "jq not found"
    status_json ;;
  *) die "usage: engines.sh up N [--images \"…\"] | down [engN …] [--purge] | status" ;;
esac
