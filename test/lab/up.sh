#!/usr/bin/env bash
# Starts the test lab (docs/egress.md#lab): a simulated internet on Docker networks that reach
# nothing outside this machine, with an IP echo, a DNS canary, a "forbidden" resolver, a WireGuard
# peer and one server per proxy type. Idempotent: a second run only checks (about a second).
#
#   bash test/lab/up.sh          (npm run lab:up)
#   CCP_LAB_STATE=/some/dir bash test/lab/up.sh
#
# 1. Builds cloud-cli-proxy/lab:latest from test/lab/image/ FROM cloud-cli-proxy/base:bookworm
#    (built first by deploy/images/build.sh when missing), unless the image's content-hash label
#    already matches (hash over test/lab/image/ and the base image's id).
# 2. State directory $CCP_LAB_STATE (default /tmp/ccp-lab, mode 0700): topology, secrets (made
#    once, kept across down/up), server configurations, lab.json and egress.env.
# 3. Networks ccp-lab-inet (203.0.113.0/24) and ccp-lab-mgmt (198.18.0.0/24), both --internal.
# 4. Containers ccp-lab-*: each is left alone when it runs with the same image, arguments and
#    configuration; started when it was only stopped; recreated otherwise.
# 5. Waits until every server answers (checked from inside the lab network, never from this
#    machine), then prints where lab.json and egress.env are.
#
# Nothing here contacts a lab address from this machine; the networks are --internal, so nothing
# in the lab can reach any address outside 203.0.113.0/24 either.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

READY_TIMEOUT=${CCP_LAB_READY_TIMEOUT:-30}
T0=$(lab_now)

command -v docker >/dev/null 2>&1 || lab_die "docker not found"
timeout 15 docker info >/dev/null 2>&1 || lab_die "the docker engine does not answer (docker info)"
lab_state_abs
lab_lock

image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }
image_hash() { docker image inspect -f "{{ index .Config.Labels \"$LAB_HASH_LABEL\" }}" "$1" 2>/dev/null || true; }
files_hash() {
  (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum) | sha256sum | cut -d' ' -f1
}

# ------------------------------------------------------------------------------------------------
# 1. Image
# ------------------------------------------------------------------------------------------------
if [ -z "$(image_id "$LAB_BASE_IMAGE")" ]; then
  lab_say "$LAB_BASE_IMAGE missing: building the project's images (deploy/images/build.sh)"
  bash "$REPO_DIR/deploy/images/build.sh"
fi
BASE_ID=$(image_id "$LAB_BASE_IMAGE")
[ -n "$BASE_ID" ] || lab_die "$LAB_BASE_IMAGE is still missing"
WANT_HASH=$(printf 'base=%s\nfiles=%s\n' "$BASE_ID" "$(files_hash "$LAB_DIR/image")" | sha256sum | cut -d' ' -f1)
OLD_IMAGE=""
if [ "$(image_hash "$LAB_IMAGE")" = "$WANT_HASH" ]; then
  lab_say "$LAB_IMAGE up to date (content-hash ${WANT_HASH:0:12})"
else
  t=$(lab_now)
  OLD_IMAGE=$(image_id "$LAB_IMAGE")
  BUILD_LOG=$(mktemp /tmp/ccp-lab-build.XXXXXX)
  if docker buildx version >/dev/null 2>&1; then BUILD=(docker build); else BUILD=(env DOCKER_BUILDKIT=0 docker build --force-rm); fi
  # --network host: apt in the build uses this machine's resolver and routes (its Debian mirror).
  if ! "${BUILD[@]}" --network host --label "$LAB_HASH_LABEL=$WANT_HASH" -t "$LAB_IMAGE" \
    "$LAB_DIR/image" >"$BUILD_LOG" 2>&1; then
    tail -n 40 "$BUILD_LOG" >&2
    rm -f "$BUILD_LOG"
    lab_die "building $LAB_IMAGE failed (the last 40 lines of the build log are above)"
  fi
  rm -f "$BUILD_LOG"
  lab_say "$LAB_IMAGE built in $(lab_elapsed "$t") (content-hash ${WANT_HASH:0:12})"
fi
IMAGE_ID=$(image_id "$LAB_IMAGE")

# ------------------------------------------------------------------------------------------------
# 2. State: topology, secrets, configurations, lab.json, egress.env
# ------------------------------------------------------------------------------------------------
umask 077
mkdir -p "$LAB_STATE/srv"
chmod 0700 "$LAB_STATE" "$LAB_STATE/srv"
: >>"$LAB_STATE/.ccp-lab" # marker: down.sh --purge only removes a directory that has it
TOPO=$(lab_topology_env)
if [ "$(cat "$LAB_STATE/srv/topology.env" 2>/dev/null || true)" != "$TOPO" ]; then
  printf '%s\n' "$TOPO" >"$LAB_STATE/srv/topology.env"
fi
INIT_STAMP=$(printf 'image=%s\nstate=%s\n%s\n' "$IMAGE_ID" "$LAB_STATE" "$TOPO" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$LAB_STATE/.init-stamp" 2>/dev/null || true)" != "$INIT_STAMP" ] ||
  [ ! -s "$LAB_STATE/secrets.json" ] || [ ! -s "$LAB_STATE/lab.json" ] || [ ! -s "$LAB_STATE/egress.env" ]; then
  docker run --rm --network none --user "$(id -u):$(id -g)" -e "CCP_LAB_STATE_HOST=$LAB_STATE" \
    -v "$LAB_STATE:/state" --label "$LAB_LABEL=true" "$LAB_IMAGE" ccp-lab-init /state |
    sed 's/^/lab: /'
  printf '%s\n' "$INIT_STAMP" >"$LAB_STATE/.init-stamp"
fi
CONF_HASH=$(files_hash "$LAB_STATE/srv")

# ------------------------------------------------------------------------------------------------
# 3. Networks
# ------------------------------------------------------------------------------------------------
# refuse_subnet CIDR — the subnet (a /24 here) must not contain an address of this machine nor be
# one of its routes: a Docker bridge there would take the machine's own traffic.
refuse_subnet() {
  local cidr=$1 prefix
  [ "$cidr" != 192.0.2.0/24 ] || lab_die "refusing $cidr: it is this dev machine's own LAN"
  prefix=${cidr%.*/*}.
  if command -v ip >/dev/null 2>&1; then
    if ip -o -4 addr show | awk '{ split($4, a, "/"); print a[1] }' | grep -qF -- "$prefix" ||
      ip -4 route show | awk '{ print $1 }' | grep -qxF -- "$cidr"; then
      lab_die "refusing $cidr: this machine already has an address or route there"
    fi
  fi
}

# ensure_network NAME SUBNET GATEWAY ICC(true|false) [IP_RANGE]
ensure_network() {
  local name=$1 subnet=$2 gw=$3 icc=$4 range=${5-} have
  have=$(docker network inspect -f \
    '{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}} {{.IPRange}}{{end}} internal={{.Internal}} icc={{index .Options "com.docker.network.bridge.enable_icc"}} lab={{index .Labels "'"$LAB_LABEL"'"}}' \
    "$name" 2>/dev/null || true)
  local want="$subnet $gw $range internal=true icc=$icc lab=true"
  if [ -n "$have" ]; then
    [ "$have" = "$want" ] || lab_die "network $name exists with other settings ($have; want $want): run test/lab/down.sh"
    return 0
  fi
  refuse_subnet "$subnet"
  local args=(--driver bridge --internal --subnet "$subnet" --gateway "$gw"
    -o "com.docker.network.bridge.enable_icc=$icc" --label "$LAB_LABEL=true")
  [ -z "$range" ] || args+=(--ip-range "$range")
  docker network create "${args[@]}" "$name" >/dev/null ||
    lab_die "could not create network $name ($subnet); is another network using that range?"
  lab_say "network $name created ($subnet, internal, icc $icc)"
}
ensure_network "$LAB_INET_NET" "$LAB_INET_SUBNET" "$LAB_INET_GATEWAY" true "$LAB_INET_DYNAMIC"
ensure_network "$LAB_MGMT_NET" "$LAB_MGMT_SUBNET" "$LAB_MGMT_GATEWAY" false

# pin_outside_routes — the machine's own package endpoints may resolve inside the lab's
# documentation range (seen here: the npm registry and the Debian mirror at 203.0.113.80, behind
# this sandbox's gateway). The lab bridge's connected route would swallow them, so each such
# address gets a /32 route via the machine's default gateway, which beats the bridge's /24 (longest
# prefix). The lab's own servers sit below .80 and its dynamic range starts at .128. Pins are
# recorded in the state directory; down.sh removes them.
pin_outside_routes() {
  command -v ip >/dev/null 2>&1 && command -v getent >/dev/null 2>&1 || return 0
  local default gw dev hosts=() h addr pinned="$LAB_STATE/pinned-routes"
  default=$(ip -4 route show default | head -n1)
  gw=$(awk '{ for (i = 1; i < NF; i++) if ($i == "via") print $(i + 1) }' <<<"$default")
  dev=$(awk '{ for (i = 1; i < NF; i++) if ($i == "dev") print $(i + 1) }' <<<"$default")
  [ -n "$gw" ] && [ -n "$dev" ] || return 0
  if command -v npm >/dev/null 2>&1; then
    h=$(npm config get registry 2>/dev/null | sed -E 's#^[a-z]+://([^/:]+).*#\1#')
    [ -z "$h" ] || hosts+=("$h")
  fi
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*; do
    [ -f "$f" ] || continue
    while read -r h; do hosts+=("$h"); done < <(grep -oE 'https?://[^/ ]+' "$f" | sed -E 's#^https?://##; s#:.*##' | sort -u)
  done
  for h in $(printf '%s\n' "${hosts[@]}" | sort -u); do
    while read -r addr; do
      case $addr in "${LAB_INET_SUBNET%.*/*}".*) ;; *) continue ;; esac
      for v in $(compgen -v | grep -E '^LAB_[A-Z_]+_IP$'); do
        [ "${!v}" != "$addr" ] || lab_die "$h resolves to $addr, a lab server's address ($v): change test/lab/lib.sh"
      done
      if ip route replace "$addr/32" via "$gw" dev "$dev" 2>/dev/null; then
        grep -qxF "$addr" "$pinned" 2>/dev/null || printf '%s\n' "$addr" >>"$pinned"
        lab_say "pinned $addr ($h) via $gw: it lies inside $LAB_INET_SUBNET"
      else
        lab_say "warning: $h resolves to $addr inside $LAB_INET_SUBNET; it is unreachable while the lab runs"
      fi
    done < <(getent ahostsv4 "$h" 2>/dev/null | awk '{ print $1 }' | sort -u)
  done
}
pin_outside_routes

# ------------------------------------------------------------------------------------------------
# 3b. checkd: the echo and the canary are the product's `node dist/main.js checkd` (lib.sh)
# ------------------------------------------------------------------------------------------------
# dist/ is built here when checkd's sources changed since the last build up.sh saw (a stamp in the
# state directory), and the containers carry a hash of the code they run, so a change restarts them.
[ -x "$LAB_CHECKD_NODE" ] || lab_die "node not found: the lab's echo and canary run the product's checkd with this machine's node"
[ -d "$REPO_DIR/node_modules/dns-packet" ] || lab_die "node_modules lacks dns-packet (checkd's DNS library): run npm ci"
CHECKD_STAMP="$LAB_STATE/.checkd-built"
if [ ! -f "$REPO_DIR/dist/checkd/main.js" ] || [ ! -f "$CHECKD_STAMP" ] ||
  [ -n "$(cd "$REPO_DIR" && find main.ts checkd shared/config shared/logger.ts shared/process package-lock.json \
    -type f -newer "$CHECKD_STAMP" ! -name '*.test.ts' -print -quit)" ]; then
  t=$(lab_now)
  # tsc reports type errors elsewhere in the tree (someone's work in progress) but still emits.
  (cd "$REPO_DIR" && "$LAB_CHECKD_NODE" node_modules/typescript/bin/tsc -p tsconfig.json >/dev/null 2>&1) ||
    [ -f "$REPO_DIR/dist/checkd/main.js" ] || lab_die "building dist/ (tsc -p tsconfig.json) failed"
  : >"$CHECKD_STAMP"
  lab_say "dist/ built for checkd ($(lab_elapsed "$t"))"
fi
LAB_CHECKD_HASH=$(cd "$REPO_DIR" && {
  "$LAB_CHECKD_NODE" --version
  find dist/main.js dist/checkd dist/shared/config dist/shared/logger.js dist/shared/process -name '*.js' -type f -print0 |
    LC_ALL=C sort -z | xargs -0 sha256sum
  sha256sum package-lock.json
} | sha256sum | cut -c1-16)

# ------------------------------------------------------------------------------------------------
# 4. Containers (in parallel)
# ------------------------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/ccp-lab-up.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

ensure_container() {
  local key=$1 name ip spec have running
  name="LAB_${key}_NAME"; name=${!name}
  ip="LAB_${key}_IP"; ip=${!ip}
  lab_command "$key"
  local args=(--init --network "$LAB_INET_NET" --ip "$ip" --hostname "$name"
    -v "$LAB_STATE/srv:/etc/ccp-lab:ro" -v "$LAB_STATE/srv/resolv.conf:/etc/resolv.conf:ro"
    "${EXTRA[@]}")
  spec=$(printf '%s\n' "$IMAGE_ID" "$CONF_HASH" "$name" "${args[@]}" -- "${CMD[@]}" | sha256sum | cut -d' ' -f1)
  have=$(docker inspect -f "{{.State.Running}} {{ index .Config.Labels \"$LAB_SPEC_LABEL\" }}" "$name" 2>/dev/null || true)
  if [ "$have" = "true $spec" ]; then
    echo "running" >"$WORK/$key"
    return 0
  fi
  if [ "$have" = "false $spec" ] && docker start "$name" >/dev/null 2>"$WORK/$key.err"; then
    echo "started" >"$WORK/$key"
    return 0
  fi
  [ -z "$have" ] || docker rm -f "$name" >/dev/null 2>&1 || true
  if docker run -d --name "$name" --label "$LAB_LABEL=true" --label "$LAB_SPEC_LABEL=$spec" \
    "${args[@]}" "$LAB_IMAGE" "${CMD[@]}" >/dev/null 2>"$WORK/$key.err"; then
    echo "created" >"$WORK/$key"
  else
    echo "failed" >"$WORK/$key"
  fi
}

t=$(lab_now)
for key in "${LAB_SERVERS[@]}"; do ensure_container "$key" & done
wait
SUMMARY="" FAILED=""
for key in "${LAB_SERVERS[@]}"; do
  n="LAB_${key}_NAME"
  r=$(cat "$WORK/$key" 2>/dev/null || echo failed)
  SUMMARY+=" ${!n#ccp-lab-}:$r"
  if [ "$r" = failed ]; then
    FAILED+=" ${!n}"
    sed "s/^/lab:   ${!n}: /" "$WORK/$key.err" >&2 || true
  fi
done
[ -z "$FAILED" ] || lab_die "could not start:$FAILED"
lab_say "containers ($(lab_elapsed "$t")):$SUMMARY"

# ------------------------------------------------------------------------------------------------
# 5. Ready?
# ------------------------------------------------------------------------------------------------
t=$(lab_now)
wg_ready() {
  local end=$((SECONDS + READY_TIMEOUT))
  until docker exec "$LAB_WG_NAME" test -f /run/ccp-lab/ready 2>/dev/null; do
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 0.2
  done
}
wg_ready &
WG_WAIT=$!
READY_OK=1
docker exec "$LAB_ECHO_NAME" ccp-lab-ready "$READY_TIMEOUT" >"$WORK/ready" 2>&1 || READY_OK=0
wait "$WG_WAIT" || { READY_OK=0; echo "ready: wg        not ready after ${READY_TIMEOUT}s" >>"$WORK/ready"; }
if [ "$READY_OK" != 1 ]; then
  sed 's/^/lab: /' "$WORK/ready" >&2
  for key in "${LAB_SERVERS[@]}"; do
    n="LAB_${key}_NAME"
    printf 'lab: --- docker logs --tail 10 %s\n' "${!n}" >&2
    docker logs --tail 10 "${!n}" 2>&1 | sed 's/^/lab:   /' >&2 || true
  done
  lab_die "the lab did not become ready"
fi
lab_say "all servers answer ($(lab_elapsed "$t"))"

if [ -n "$OLD_IMAGE" ] && [ "$OLD_IMAGE" != "$IMAGE_ID" ]; then
  docker rmi "$OLD_IMAGE" >/dev/null 2>&1 || true
fi

lab_say "up in $(lab_elapsed "$T0"): $LAB_STATE/lab.json, $LAB_STATE/egress.env"
