#!/usr/bin/env bash
# Install cloud-cli-proxy as systemd services on this machine (README "Operations", docs/operations.md#systemd):
#
#   sudo bash deploy/scripts/install.sh --env-file ./prod.env [--workers N] [--checkd] [--no-start]
#                                       [--backup-schedule SPEC]
#
# Run from a built checkout (`npm run build`: dist/ with dist/ui/, node_modules/). Idempotent: a
# second run with the same inputs changes nothing. Steps:
#   1. finds node (--node PATH, else $NODE, else PATH, /usr/local/bin, /usr/bin) and checks its version;
#   2. creates the system user `cloudproxy` and, when missing, the group `docker` (with the gid of
#      /var/run/docker.sock) that the workers use to reach the engine;
#   3. copies everything the runtime reads to /opt/cloud-cli-proxy: package.json, dist/ (with the
#      web UI in dist/ui/), api/scripts/ (served by /entry and the bootstrap route),
#      drizzle/migrations/, deploy/scripts/ and the production node_modules/ (dev packages pruned);
#   4. /etc/cloud-cli-proxy/env, mode 0600 owner root, from --env-file (kept when not given);
#   5. renders the units from deploy/systemd/ with the node path found, installs postgresql-client
#      (pg_dump, for the backup timer) when missing, and enables and starts
#      cloud-cli-proxy-control-plane, cloud-cli-proxy-worker@1..N, cloud-cli-proxy-backup.timer and,
#      with --checkd (needs /etc/cloud-cli-proxy/checkd.env), cloud-cli-proxy-checkd.
#      The backup timer runs daily (30 min random delay) unless --backup-schedule gives a systemd
#      calendar expression (e.g. '*-*-* 03:15:00', run exactly then); a later run without the
#      option keeps the installed schedule.
# Undo with deploy/scripts/uninstall.sh.
set -euo pipefail

say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PREFIX=/opt/cloud-cli-proxy
CONF_DIR=/etc/cloud-cli-proxy
UNIT_DIR=/etc/systemd/system
SERVICE_USER=cloudproxy
STATE_FILE=$PREFIX/.install-state

env_file="" workers=1 checkd=0 start=1 node_arg="${NODE:-}" backup_schedule=""
while [ $# -gt 0 ]; do
  case "$1" in
    --env-file) env_file=${2:?--env-file needs a path}; shift 2 ;;
    --workers) workers=${2:?--workers needs a number}; shift 2 ;;
    --node) node_arg=${2:?--node needs a path}; shift 2 ;;
    --checkd) checkd=1; shift ;;
    --backup-schedule) backup_schedule=${2:?--backup-schedule needs a systemd calendar expression}; shift 2 ;;
    --no-start) start=0; shift ;;
    -h | --help) sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) printf 'usage: install.sh [--env-file PATH] [--workers N] [--node PATH] [--checkd] [--no-start] [--backup-schedule SPEC]\n' >&2; exit 2 ;;
  esac
done
if ! [[ $workers =~ ^[0-9]{1,2}$ ]] || ((10#$workers < 1)); then die "--workers must be 1..99 (got '$workers')"; fi
workers=$((10#$workers))
# A calendar expression is letters, digits and ': * / , . ~ - +' and spaces; anything else (a
# newline, '#', '$') could not be one and would change the rendered unit.
if [ -n "$backup_schedule" ] && ! [[ $backup_schedule =~ ^[A-Za-z0-9:*/,.~+\ -]{1,100}$ ]]; then
  die "--backup-schedule: '$backup_schedule' is not a systemd calendar expression"
fi

[ "$(id -u)" -eq 0 ] || die "run as root (sudo bash deploy/scripts/install.sh …)"
if ! [ -d /run/systemd/system ] || ! have systemctl; then die "systemd is not running on this machine"; fi

if [ -n "$backup_schedule" ] && have systemd-analyze && ! systemd-analyze calendar "$backup_schedule" >/dev/null 2>&1; then
  die "--backup-schedule: systemd does not accept '$backup_schedule' (try: systemd-analyze calendar '$backup_schedule')"
fi
if [ -z "$backup_schedule" ] && [ -f "$UNIT_DIR/cloud-cli-proxy-backup.timer" ]; then
  backup_schedule=$(sed -n 's/^OnCalendar=//p' "$UNIT_DIR/cloud-cli-proxy-backup.timer" | head -n 1)
fi
[ -n "$backup_schedule" ] || backup_schedule=daily

# --- 1. node ---------------------------------------------------------------------------------
find_node() {
  local c
  if [ -n "$node_arg" ]; then printf '%s' "$node_arg"; return; fi
  for c in "$(command -v node 2>/dev/null || true)" /usr/local/bin/node /usr/bin/node; do
    [ -n "$c" ] && [ -x "$c" ] && { printf '%s' "$c"; return; }
  done
  return 1
}
node_bin=$(find_node) || die "node not found: install Node.js 20.19+ (or 22.12+), or pass --node PATH"
[ -x "$node_bin" ] || die "$node_bin is not executable"
node_bin=$(readlink -f -- "$node_bin")
# package.json engines: ^20.19.0 || >=22.12.0.
"$node_bin" -e '
  const [maj, min] = process.versions.node.split(".").map(Number);
  process.exit((maj === 20 && min >= 19) || (maj === 22 && min >= 12) || maj > 22 ? 0 : 1);
' || die "Node.js 20.19+ or 22.12+ is needed, found $("$node_bin" --version) at $node_bin"
say "node $("$node_bin" --version) at $node_bin"

# --- 2. user and group -----------------------------------------------------------------------
created_docker_group=0
[ -f "$STATE_FILE" ] && grep -qx 'created_docker_group=1' "$STATE_FILE" && created_docker_group=1
if ! getent group docker >/dev/null; then
  if [ -S /var/run/docker.sock ]; then
    groupadd --system --gid "$(stat -c %g /var/run/docker.sock)" docker
  else
    groupadd --system docker
  fi
  created_docker_group=1
  say "created group docker"
fi
if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
  useradd --system --user-group --home-dir /nonexistent --no-create-home \
    --shell /usr/sbin/nologin "$SERVICE_USER"
  say "created system user $SERVICE_USER"
fi

# --- 3. the package --------------------------------------------------------------------------
for p in package.json dist/main.js dist/ui/index.html api/scripts drizzle/migrations deploy/scripts node_modules; do
  [ -e "$SRC/$p" ] || die "$SRC/$p is missing: run npm ci && npm run build in $SRC first"
done
payload=(package.json dist api/scripts drizzle/migrations deploy/scripts node_modules)
[ -f "$SRC/package-lock.json" ] && payload+=(package-lock.json)
# The content hash of what would be copied, plus the node path: unchanged means nothing to do.
want_hash=$(cd "$SRC" && {
  printf 'node=%s\n' "$node_bin"
  find "${payload[@]}" -type f -printf '%p %s %T@\n' | LC_ALL=C sort
} | sha256sum | cut -d' ' -f1)
have_hash=""
[ -f "$STATE_FILE" ] && have_hash=$(sed -n 's/^hash=//p' "$STATE_FILE")
if [ "$want_hash" != "$have_hash" ]; then
  install -d -m 0755 "$(dirname "$PREFIX")"
  stage=$(mktemp -d "$(dirname "$PREFIX")/.cloud-cli-proxy.XXXXXX")
  trap 'rm -rf -- "$stage"' EXIT
  (cd "$SRC" && cp -a --parents "${payload[@]}" "$stage/")
  # Production dependencies only. npm prune works offline; without npm the tree is copied whole.
  npm_bin=$(dirname "$node_bin")/npm
  [ -x "$npm_bin" ] || npm_bin=$(command -v npm 2>/dev/null || true)
  if [ -n "$npm_bin" ]; then
    (cd "$stage" && PATH="$(dirname "$node_bin"):$PATH" "$npm_bin" prune --omit=dev --offline \
      --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null) ||
      die "npm prune --omit=dev failed in $stage"
  else
    say "npm not found next to $node_bin: node_modules copied with its dev packages"
  fi
  chown -R root:root "$stage"
  chmod -R u+rwX,go+rX,go-w "$stage"
  chmod 0755 "$stage"
  if [ -d "$PREFIX" ]; then
    rm -rf -- "$PREFIX.old"
    mv -- "$PREFIX" "$PREFIX.old"
  fi
  mv -- "$stage" "$PREFIX"
  trap - EXIT
  rm -rf -- "$PREFIX.old"
  changed_package=1
  say "installed the package in $PREFIX"
else
  changed_package=0
  say "$PREFIX is up to date"
fi
printf 'hash=%s\ncreated_docker_group=%s\n' "$want_hash" "$created_docker_group" >"$STATE_FILE.tmp"
if cmp -s "$STATE_FILE.tmp" "$STATE_FILE" 2>/dev/null; then rm -f "$STATE_FILE.tmp"; else mv "$STATE_FILE.tmp" "$STATE_FILE"; fi

# --- 4. configuration ------------------------------------------------------------------------
install -d -m 0755 -o root -g root "$CONF_DIR"
if [ -n "$env_file" ]; then
  [ -f "$env_file" ] || die "$env_file does not exist"
  if ! cmp -s "$env_file" "$CONF_DIR/env" 2>/dev/null; then
    install -m 0600 -o root -g root "$env_file" "$CONF_DIR/env"
    changed_env=1
    say "wrote $CONF_DIR/env"
  fi
fi
[ -f "$CONF_DIR/env" ] || die "$CONF_DIR/env does not exist: pass --env-file PATH (see .env.example)"
chown root:root "$CONF_DIR/env"
chmod 0600 "$CONF_DIR/env"
if [ "$checkd" = 1 ]; then
  [ -f "$CONF_DIR/checkd.env" ] || die "--checkd needs $CONF_DIR/checkd.env (README \"Deploying the egress check service (checkd)\")"
  chmod 0600 "$CONF_DIR/checkd.env"
fi

# --- 5. units --------------------------------------------------------------------------------
if ! have pg_dump; then
  have apt-get || die "pg_dump not found and no apt-get: install postgresql-client for the backup timer"
  say "installing postgresql-client (pg_dump, for the backup timer)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-client >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-client >/dev/null; } ||
    die "could not install postgresql-client"
fi

units=(cloud-cli-proxy-control-plane.service cloud-cli-proxy-worker@.service cloud-cli-proxy-worker.service
  cloud-cli-proxy-checkd.service cloud-cli-proxy-backup.service cloud-cli-proxy-backup.timer)
# The workers require docker.service; an engine that systemd here does not manage (another unit
# name, a socket from elsewhere) has none, and the requirement is dropped.
drop_docker_dep=()
if ! systemctl cat docker.service >/dev/null 2>&1; then
  drop_docker_dep=(-e '/^Requires=docker\.service$/d')
  say "no docker.service here: the workers do not require it"
fi
changed_units=0
# The backup schedule: the template's daily run keeps its random delay (many machines do not all
# dump at midnight); an explicit schedule runs when it says, to the second.
timer_edit=()
if [ "$backup_schedule" != daily ]; then
  timer_edit=(-e "s#^OnCalendar=.*#OnCalendar=$backup_schedule#" -e 's#^RandomizedDelaySec=.*#RandomizedDelaySec=0#'
    -e 's#^AccuracySec=.*#AccuracySec=1s#')
fi
for u in "${units[@]}"; do
  [ -f "$SRC/deploy/systemd/$u" ] || die "$SRC/deploy/systemd/$u is missing"
  edits=("${drop_docker_dep[@]}")
  [ "$u" = cloud-cli-proxy-backup.timer ] && edits+=("${timer_edit[@]}")
  rendered=$(sed -e "s#/usr/bin/node #$node_bin #g" -e "s#/opt/cloud-cli-proxy/#$PREFIX/#g" \
    "${edits[@]}" "$SRC/deploy/systemd/$u")
  if [ "$rendered" != "$(cat "$UNIT_DIR/$u" 2>/dev/null)" ]; then
    printf '%s\n' "$rendered" >"$UNIT_DIR/$u"
    chmod 0644 "$UNIT_DIR/$u"
    changed_units=1
  fi
done
if [ "$changed_units" = 1 ]; then
  systemctl daemon-reload
  say "installed the units in $UNIT_DIR"
fi

enable=(cloud-cli-proxy-control-plane.service cloud-cli-proxy-backup.timer)
for ((i = 1; i <= workers; i++)); do enable+=("cloud-cli-proxy-worker@$i.service"); done
[ "$checkd" = 1 ] && enable+=(cloud-cli-proxy-checkd.service)
# Worker instances above N from an earlier run with more workers.
while read -r w _; do
  n=${w#cloud-cli-proxy-worker@}; n=${n%.service}
  if [[ $n =~ ^[0-9]+$ ]] && ((n > workers)); then
    systemctl disable --now "$w" >/dev/null 2>&1 || true
    say "stopped $w"
  fi
done < <(systemctl list-units --all --plain --no-legend 'cloud-cli-proxy-worker@*' 2>/dev/null)

for u in "${enable[@]}"; do
  systemctl is-enabled --quiet "$u" 2>/dev/null || { systemctl enable --quiet "$u"; say "enabled $u"; }
done
if [ "$start" = 1 ]; then
  for u in "${enable[@]}"; do
    # A new package, environment or unit file: restart what already runs.
    if systemctl is-active --quiet "$u"; then
      if [ "$changed_package" = 1 ] || [ "${changed_env:-0}" = 1 ] || [ "$changed_units" = 1 ]; then
        # A timer picks up a new schedule on daemon-reload; restarting it would only reset it.
        [ "$u" = cloud-cli-proxy-backup.timer ] || { systemctl restart "$u"; say "restarted $u"; }
      fi
    else
      systemctl start "$u"
      say "started $u"
    fi
  done
fi
say "done"
