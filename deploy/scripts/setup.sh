#!/usr/bin/env bash
# Idempotent installer for a single machine (Debian 12): npm dependencies, local Postgres and
# Redis, a generated .env, the TypeScript build and the database migrations.
#
#   npm run setup            (or: bash deploy/scripts/setup.sh, from any directory)
#
# Every step checks before it acts, so a second run only verifies and takes a few seconds.
# Values are read from the environment first, then from .env (the environment wins).
#
# It also installs and starts the Docker engine and builds the local images (base, host, gateway;
# deploy/images/build.sh, cached by content hash). CCP_SKIP_DOCKER=1 skips that step entirely,
# e.g. on a machine that only runs the api and sshd, or where Docker is managed by someone else.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif have sudo; then
    sudo "$@"
  else
    die "root is needed to run: $*"
  fi
}

# Run as the postgres superuser over the local socket; cd / so that postgres does not complain
# about a working directory it cannot read.
as_postgres() { (cd / && as_root runuser -u postgres -- "$@"); }

# systemd may not be PID 1 (containers, CI): then services are started directly.
systemd_running() { [ -d /run/systemd/system ] && have systemctl; }

APT_UPDATED=0
apt_install() {
  have apt-get || die "apt-get not found; install $* yourself"
  local attempt
  for attempt in 1 2 3; do
    if [ "$APT_UPDATED" = 1 ] || as_root env DEBIAN_FRONTEND=noninteractive apt-get -qq update; then
      APT_UPDATED=1
      if as_root env DEBIAN_FRONTEND=noninteractive apt-get -qq install -y --no-install-recommends "$@" >/dev/null; then
        return 0
      fi
    fi
    if [ "$attempt" -lt 3 ]; then
      say "apt-get failed (attempt $attempt of 3), retrying"
      sleep 3
    fi
  done
  die "could not install $* with apt-get"
}

# wait_for SECONDS WHAT COMMAND... — polls COMMAND every 0.5 s.
wait_for() {
  local secs=$1 what=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "$what did not answer within ${secs}s"
    sleep 0.5
  done
}

# --- configuration: environment first, then .env ---------------------------------------------
# .env is parsed by Node's own parser (util.parseEnv), the one the processes use
# (shared/config/env-file.ts), so this script and the app always read the same values; the file
# is never sourced or executed.
declare -A DOTENV=()
load_dotenv() {
  DOTENV=()
  [ -f .env ] || return 0
  local key val
  while IFS= read -r -d '' key && IFS= read -r -d '' val; do
    DOTENV[$key]=$val
  done < <(node -e '
    const { parseEnv } = require("node:util");
    const env = parseEnv(require("node:fs").readFileSync(".env", "utf8"));
    for (const [k, v] of Object.entries(env)) process.stdout.write(k + "\0" + v + "\0");
  ')
}

# cfg KEY [DEFAULT] — the environment's value if set (even empty), else .env's, else DEFAULT.
cfg() {
  if [[ -v $1 ]]; then
    printf '%s' "${!1}"
  elif [[ -n ${DOTENV[$1]+x} ]]; then
    printf '%s' "${DOTENV[$1]}"
  else
    printf '%s' "${2-}"
  fi
}

# parse_url URL — prints scheme, user, password, host, port, path (without the leading /),
# one per line, percent-decoded. The URL is passed through the environment, not argv, so that
# the password does not show up in the process list.
parse_url() {
  CCP_URL=$1 node -e '
    const d = decodeURIComponent;
    let u;
    try { u = new URL(process.env.CCP_URL); } catch { process.exit(1); }
    const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
    process.stdout.write([u.protocol.replace(/:$/, ""), d(u.username), d(u.password), host, u.port,
      d(u.pathname.replace(/^\//, ""))].join("\n") + "\n");
  '
}

is_local_host() { [ "$1" = 127.0.0.1 ] || [ "$1" = localhost ]; }

# --- random values ----------------------------------------------------------------------------
# rand_alnum N — N characters from [A-Za-z0-9] (crypto.randomInt, so no modulo bias).
rand_alnum() {
  node -e '
    const c = require("crypto");
    const a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let s = "";
    for (let i = 0; i < Number(process.argv[1]); i++) s += a[c.randomInt(a.length)];
    process.stdout.write(s);
  ' "$1"
}
rand_base64_32() { node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("base64"))'; }

# ==============================================================================================
# Node.js
# ==============================================================================================
step_node() {
  have node || die "node not found: install Node.js 20.19+ (or 22.12+)"
  have npm || die "npm not found: install npm (it ships with Node.js)"
  # package.json engines: ^20.19.0 || >=22.12.0, what the build tools (Vite 7) accept; the code
  # itself needs 20.12 (util.parseEnv). test/unit/dependencies.test.ts keeps the two in step.
  node -e '
    const [maj, min] = process.versions.node.split(".").map(Number);
    process.exit((maj === 20 && min >= 19) || (maj === 22 && min >= 12) || maj > 22 ? 0 : 1);
  ' || die "Node.js 20.19+ or 22.12+ is needed, found $(node --version)"
  say "node $(node --version)"
}

# ==============================================================================================
# .env (before Postgres, so that the database password exists when the role is created)
# ==============================================================================================
ENV_KEYS=(
  DATABASE_URL REDIS_URL REDIS_PREFIX SECRETS_KEY ADMIN_JWT_SECRET ADMIN_USERNAME ADMIN_PASSWORD
  PUBLIC_BASE_URL LOG_LEVEL LOG_FORMAT
  EGRESS_DEFAULT_DNS_SERVER EGRESS_CHECK_URL EGRESS_ECHO_URL EGRESS_DNS_CANARY_DOMAIN
  EGRESS_DNS_CANARY_API EGRESS_DNS_CANARY_API_SECRET EGRESS_CHECK_FORBIDDEN_RESOLVER
)

# The value a fresh .env gets for KEY. Egress settings point at the test lab (documentation
# addresses, docs/egress.md#lab), never at a public service.
env_default() {
  case $1 in
    DATABASE_URL) printf 'postgres://ccp:%s@127.0.0.1:5432/ccp' "$(rand_alnum 24)" ;;
    REDIS_URL) printf 'redis://127.0.0.1:6379' ;;
    REDIS_PREFIX) printf 'ccp' ;;
    SECRETS_KEY) printf 'v1:%s' "$(rand_base64_32)" ;;
    ADMIN_JWT_SECRET) rand_alnum 48 ;;
    ADMIN_USERNAME) printf 'admin' ;;
    ADMIN_PASSWORD) rand_alnum 20 ;;
    PUBLIC_BASE_URL) printf 'http://127.0.0.1:8080' ;;
    LOG_LEVEL) printf 'info' ;;
    LOG_FORMAT) printf 'json' ;;
    EGRESS_DEFAULT_DNS_SERVER) printf '203.0.113.53' ;;
    EGRESS_CHECK_URL) printf 'http://203.0.113.10/generate_204' ;;
    EGRESS_ECHO_URL) printf 'http://203.0.113.10/ip' ;;
    EGRESS_DNS_CANARY_DOMAIN) printf 'egress.test' ;;
    EGRESS_DNS_CANARY_API) printf 'http://203.0.113.53:8053' ;;
    # The test lab's checkd uses its own secret (lab.json's env); this one only completes the set.
    EGRESS_DNS_CANARY_API_SECRET) rand_alnum 40 ;;
    EGRESS_CHECK_FORBIDDEN_RESOLVER) printf '203.0.113.54' ;;
    *) die "no default for $1" ;;
  esac
}

step_env() {
  if [ "$(cfg NODE_ENV)" = production ]; then
    if [ -f .env ]; then
      say ".env present (NODE_ENV=production: left as it is)"
    else
      say "NODE_ENV=production: no .env generated; the operator must provide the environment"
    fi
    return 0
  fi

  if [ ! -f .env ]; then
    local key
    # Written next to .env and renamed, so that an interrupted run never leaves half a file
    # (which the next run would take as an existing .env).
    ENV_TMP=$(mktemp .env.XXXXXX)
    trap 'rm -f "$ENV_TMP"' EXIT
    chmod 600 "$ENV_TMP"
    {
      printf '# Generated by deploy/scripts/setup.sh on %s. Every variable: .env.example.\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
      for key in "${ENV_KEYS[@]}"; do printf '%s=%s\n' "$key" "$(env_default "$key")"; done
    } >"$ENV_TMP"
    mv "$ENV_TMP" .env
    load_dotenv
    say ".env generated (mode 0600)"
    say "admin login: username '$(cfg ADMIN_USERNAME)', password '$(cfg ADMIN_PASSWORD)' (stored in .env)"
    return 0
  fi

  # Older .env files keep working: append what they lack, never overwrite, never print secrets.
  local added=() key
  for key in "${ENV_KEYS[@]}"; do
    [[ -n ${DOTENV[$key]+x} ]] || added+=("$key")
  done
  if [ ${#added[@]} -gt 0 ]; then
    # Make sure the appended lines do not glue onto a last line without a newline.
    if [ -s .env ] && [ -n "$(tail -c 1 .env)" ]; then printf '\n' >>.env; fi
    for key in "${added[@]}"; do printf '%s=%s\n' "$key" "$(env_default "$key")" >>.env; done
    load_dotenv
    say ".env present; added ${added[*]} (values not shown)"
  else
    say ".env present"
  fi
}

# ==============================================================================================
# npm dependencies
# ==============================================================================================
step_npm() {
  [ -f package-lock.json ] || die "package-lock.json is missing"
  local want have_sum=""
  want=$(sha256sum package-lock.json | cut -d' ' -f1)
  [ -f node_modules/.ccp-lock-sha256 ] && have_sum=$(<node_modules/.ccp-lock-sha256)
  if [ -d node_modules ] && [ "$want" = "$have_sum" ]; then
    say "npm dependencies up to date"
    return 0
  fi
  say "installing npm dependencies (npm ci)"
  # --include=dev: the build below needs typescript even when NODE_ENV=production.
  npm ci --no-audit --no-fund --include=dev
  printf '%s\n' "$want" >node_modules/.ccp-lock-sha256
}

# ==============================================================================================
# Postgres, the ccp role and database
# ==============================================================================================
pg_ready() { pg_isready -q -t 2 -h 127.0.0.1 -p 5432; }

start_postgres() {
  local ver="" name=""
  # A cluster on port 5432, else create one for the newest installed server version.
  read -r ver name < <(pg_lsclusters --no-header 2>/dev/null | awk '$3 == 5432 { print $1, $2; exit }') || true
  if [ -z "$ver" ]; then
    ver=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1)
    [ -n "$ver" ] || die "no PostgreSQL server found under /usr/lib/postgresql"
    name=main
    say "creating PostgreSQL $ver cluster '$name' on port 5432"
    as_root pg_createcluster "$ver" "$name" --port 5432 >/dev/null
  fi
  if systemd_running; then
    as_root systemctl start "postgresql@$ver-$name"
  else
    # "already running" is not an error here; pg_isready below decides.
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start || true
  fi
}

step_postgres() {
  local url
  url=$(cfg DATABASE_URL)
  if [ -z "$url" ]; then
    say "postgres: DATABASE_URL is not set, skipped"
    return 0
  fi
  local parts=()
  mapfile -t parts < <(parse_url "$url") || true
  [ ${#parts[@]} -eq 6 ] || die "DATABASE_URL is not a valid URL"
  local user=${parts[1]} pw=${parts[2]} host=${parts[3]} port=${parts[4]} db=${parts[5]}
  # Only the local database this script provisions is managed; an operator's own database
  # (another user, host or port) is left alone.
  if [ "$user" != ccp ] || ! is_local_host "$host" || { [ -n "$port" ] && [ "$port" != 5432 ]; }; then
    say "postgres: DATABASE_URL points at ${user:-?}@${host}${port:+:$port}, not managed here, skipped"
    return 0
  fi
  [ -n "$pw" ] || die "DATABASE_URL has no password for user ccp"
  [ -n "$db" ] || db=ccp

  have pg_isready && have psql || apt_install postgresql-client
  if pg_ready; then
    say "postgres answering on 127.0.0.1:5432"
  else
    if ! have pg_ctlcluster || ! have pg_lsclusters || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
      say "installing postgresql (apt)"
      apt_install postgresql
    fi
    # The package's post-install may already have started it.
    if ! pg_ready; then
      say "starting postgres"
      start_postgres
    fi
    wait_for 30 "postgres on 127.0.0.1:5432" pg_ready
    say "postgres answering on 127.0.0.1:5432"
  fi

  # Values go in as psql variables and are quoted by psql (:'literal', :"identifier"), so a
  # password with quotes in it cannot change the statement. ALTER on every run keeps the role's
  # password equal to the one in DATABASE_URL.
  as_postgres psql -X -q -v ON_ERROR_STOP=1 -d postgres -v role=ccp -v pw="$pw" -v db="$db" <<'SQL'
SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') AS role_exists \gset
\if :role_exists
ALTER ROLE :"role" WITH LOGIN CREATEDB PASSWORD :'pw';
\else
CREATE ROLE :"role" WITH LOGIN CREATEDB PASSWORD :'pw';
\endif
SELECT NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') AS db_missing \gset
\if :db_missing
CREATE DATABASE :"db" OWNER :"role";
\endif
SQL
  say "postgres role ccp and database $db ready"
}

# ==============================================================================================
# Redis
# ==============================================================================================
redis_ready() {
  local out
  out=$(timeout 3 redis-cli -h 127.0.0.1 -p 6379 ping 2>&1) || true
  # NOAUTH: a Redis with a password is running; it answers, which is all this step checks.
  [[ $out == *PONG* || $out == *NOAUTH* ]]
}

start_redis() {
  if systemd_running; then
    as_root systemctl start redis-server
    return 0
  fi
  local runas=()
  as_root mkdir -p /var/lib/redis /var/log/redis
  if id redis >/dev/null 2>&1; then
    as_root chown redis:redis /var/lib/redis /var/log/redis
    runas=(runuser -u redis --)
  fi
  # No persistence: this is the development/CI instance. "-::1" binds IPv6 loopback only if present.
  (cd / && as_root "${runas[@]}" redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 \
    --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ccp-setup.log)
}

step_redis() {
  local url parts=()
  url=$(cfg REDIS_URL redis://127.0.0.1:6379)
  mapfile -t parts < <(parse_url "$url") || true
  [ ${#parts[@]} -eq 6 ] || die "REDIS_URL is not a valid URL"
  local host=${parts[3]} port=${parts[4]}
  if ! is_local_host "$host" || { [ -n "$port" ] && [ "$port" != 6379 ]; }; then
    say "redis: REDIS_URL points at ${host}${port:+:$port}, not managed here, skipped"
    return 0
  fi

  have redis-cli || apt_install redis-tools
  if ! redis_ready; then
    if ! have redis-server; then
      say "installing redis-server (apt)"
      apt_install redis-server redis-tools
    fi
    if ! redis_ready; then
      say "starting redis"
      start_redis
    fi
    wait_for 15 "redis on 127.0.0.1:6379" redis_ready
  fi
  say "redis answering on 127.0.0.1:6379"
}

# ==============================================================================================
# Docker engine and images
# ==============================================================================================
# The engine is Debian's docker.io (no registry needed). Under systemd it is the docker unit;
# otherwise (containers, CI VMs) dockerd is started detached in its own session, logging to
# /var/log/ccp-dockerd.log, and keeps running after setup exits. Then deploy/images/build.sh
# builds the base, host and gateway images (one line per image; cached by content hash).
# CCP_SKIP_DOCKER=1 skips all of it.
DOCKERD_LOG=/var/log/ccp-dockerd.log

docker_ready() { timeout 10 docker info >/dev/null 2>&1; }

start_dockerd() {
  if systemd_running; then
    as_root systemctl enable --now docker.service >/dev/null 2>&1 || as_root systemctl start docker.service
    return 0
  fi
  have dockerd || die "dockerd not found (package docker.io)"
  local args=()
  # overlay2 when the kernel has overlayfs (built in or as a module); else dockerd's own choice.
  if grep -qw overlay /proc/filesystems || as_root modprobe overlay >/dev/null 2>&1; then
    args+=(--storage-driver=overlay2)
  fi
  # The default bridge (docker0) with iptables NAT: builds and user-defined bridges need it.
  # setsid -f: its own session, so it outlives this script and the CI job's process group.
  (cd / && as_root setsid -f sh -c 'exec "$@" </dev/null >>'"$DOCKERD_LOG"' 2>&1' dockerd \
    dockerd --host=unix:///var/run/docker.sock "${args[@]}")
}

step_docker() {
  if [ "$(cfg CCP_SKIP_DOCKER)" = 1 ]; then
    say "docker: CCP_SKIP_DOCKER=1, skipped"
    return 0
  fi
  if ! docker_ready; then
    # iptables: dockerd's bridge NAT; debootstrap: build.sh bootstraps the base without a registry.
    local pkgs=()
    { have dockerd && have docker; } || pkgs+=(docker.io)
    have iptables || pkgs+=(iptables)
    have debootstrap || pkgs+=(debootstrap)
    if [ ${#pkgs[@]} -gt 0 ]; then
      say "installing ${pkgs[*]} (apt)"
      apt_install "${pkgs[@]}"
    fi
    # The package's post-install may already have started it.
    if ! docker_ready; then
      say "starting the docker engine"
      start_dockerd
    fi
    wait_for 60 "docker (see $DOCKERD_LOG)" docker_ready
  fi
  say "docker $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?') answering"
  # Each host's home is a fixed-size ext4 image loop-mounted on this machine (README "Disk and
  # logs"): the disk agent runs this machine's mkfs.ext4 (e2fsprogs), mount -o loop (mount) and
  # mountpoint (util-linux). /sbin is not on every user's PATH, hence the explicit paths.
  local disk_pkgs=() tool
  for tool in mkfs.ext4:e2fsprogs mount:mount mountpoint:util-linux; do
    have "${tool%%:*}" || [ -x "/sbin/${tool%%:*}" ] || [ -x "/usr/sbin/${tool%%:*}" ] || [ -x "/bin/${tool%%:*}" ] ||
      disk_pkgs+=("${tool#*:}")
  done
  if [ ${#disk_pkgs[@]} -gt 0 ]; then
    say "installing ${disk_pkgs[*]} (apt) for the hosts' home disks"
    apt_install "${disk_pkgs[@]}"
  fi
  # docker-compose.yml (README "Operations"), driven end to end by test/e2e/compose.test.ts: the
  # compose plugin when the engine has one, else Debian's docker-compose (v1.29 reads the file too).
  if ! docker compose version >/dev/null 2>&1 && ! have docker-compose; then
    say "installing docker-compose (apt)"
    apt_install docker-compose
  fi
  # Only needed when the base image has to be bootstrapped (no registry).
  if ! have debootstrap && ! docker image inspect cloud-cli-proxy/base:bookworm >/dev/null 2>&1; then
    apt_install debootstrap
  fi
  bash deploy/images/build.sh || die "image build failed (deploy/images/build.sh)"
}

# ==============================================================================================
# TypeScript build
# ==============================================================================================
# Hash over everything that changes the output of tsc: the sources (tests excluded, as in
# tsconfig.json), tsconfig.json and the lockfile. Paths are part of the hash, so adding,
# removing or renaming a file also triggers a build.
build_hash() {
  local files=() f
  while IFS= read -r f; do
    [ -f "$f" ] && files+=("$f")
  done < <(
    {
      printf '%s\n' main.ts tsconfig.json package-lock.json
      # api/ui is the browser app: built by step_build_ui, not by tsc.
      find api worker sshd shared drizzle -type f -name '*.ts' ! -name '*.test.ts' ! -path 'api/ui/*' 2>/dev/null || true
    } | LC_ALL=C sort -u
  )
  sha256sum -- "${files[@]}" | sha256sum | cut -d' ' -f1
}

step_build() {
  local want have_sum=""
  want=$(build_hash)
  [ -f dist/.ccp-build-sha256 ] && have_sum=$(<dist/.ccp-build-sha256)
  if [ "$want" = "$have_sum" ] && [ -f dist/main.js ]; then
    say "build up to date"
    return 0
  fi
  say "building (tsc)"
  ./node_modules/.bin/tsc -p tsconfig.json || die "TypeScript build failed"
  printf '%s\n' "$want" >dist/.ccp-build-sha256
}

# ==============================================================================================
# Web UI (api/ui, Vite) into dist/ui
# ==============================================================================================
# Same scheme as the TypeScript build: a hash over the UI sources, its Vite config and the
# lockfile (which pins React and Vite); unchanged → skipped. The API serves dist/ui at start.
ui_hash() {
  local files=() f
  while IFS= read -r f; do
    [ -f "$f" ] && files+=("$f")
  done < <(
    {
      printf '%s\n' package-lock.json
      find api/ui -type f ! -path '*/node_modules/*' 2>/dev/null || true
    } | LC_ALL=C sort -u
  )
  sha256sum -- "${files[@]}" | sha256sum | cut -d' ' -f1
}

step_build_ui() {
  local want have_sum=""
  want=$(ui_hash)
  [ -f dist/ui/.ccp-ui-sha256 ] && have_sum=$(<dist/ui/.ccp-ui-sha256)
  if [ "$want" = "$have_sum" ] && [ -f dist/ui/index.html ]; then
    say "web UI up to date"
    return 0
  fi
  say "building the web UI (vite)"
  ./node_modules/.bin/vite build --config api/ui/vite.config.ts --logLevel warn || die "web UI build failed"
  printf '%s\n' "$want" >dist/ui/.ccp-ui-sha256
}

# ==============================================================================================
# Chromium (browser tests of the web UI)
# ==============================================================================================
# Debian's chromium, driven by playwright-core in test/e2e/ui.test.ts (no browser download), and
# wireguard-tools for shared/services/egress/wg-keys.test.ts. CCP_SKIP_CHROMIUM=1 skips both,
# e.g. on a production machine that never runs the tests.
step_chromium() {
  if [ "$(cfg CCP_SKIP_CHROMIUM)" = 1 ]; then
    say "chromium: CCP_SKIP_CHROMIUM=1, skipped"
    return 0
  fi
  if [ -x /usr/bin/chromium ]; then
    say "chromium present"
  else
    say "installing chromium (apt)"
    # A font, so that screenshots show text where a minimal system has none.
    apt_install chromium fonts-dejavu-core
  fi
  # The reference `wg` tool the WireGuard key tests compare against (same skip switch: test tools).
  if ! have wg; then
    say "installing wireguard-tools (apt)"
    apt_install wireguard-tools
  fi
}

# ==============================================================================================
# Migrations
# ==============================================================================================
step_migrate() {
  # main.js reads .env itself; the environment still wins there too.
  say "applying database migrations"
  # Bounded, so that a stuck migration (e.g. waiting on a lock) fails the setup instead of
  # hanging CI.
  local limit=300 rc=0
  timeout "$limit" node dist/main.js migrate || rc=$?
  [ "$rc" -ne 124 ] || die "database migration did not finish within ${limit}s"
  [ "$rc" -eq 0 ] || die "database migration failed"
}

step_node
load_dotenv
step_env
step_npm
step_postgres
step_redis
step_docker
step_build
step_build_ui
step_chromium
step_migrate
say "done"
