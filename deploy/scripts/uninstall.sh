#!/usr/bin/env bash
# Remove what deploy/scripts/install.sh installed (README "Operations", docs/operations.md#systemd):
#
#   sudo bash deploy/scripts/uninstall.sh [--keep-config] [--purge-backups]
#
# Stops and disables every cloud-cli-proxy unit, deletes the unit files, /opt/cloud-cli-proxy, the
# system user `cloudproxy`, the group `docker` when install.sh created it, and /etc/cloud-cli-proxy
# (unless --keep-config). The database, Redis and the hosts' containers are not touched: delete
# the hosts through the API first. Backups in /var/backups/cloud-cli-proxy stay unless
# --purge-backups. Idempotent: running it on a clean machine does nothing and exits 0.
set -euo pipefail

say() { printf 'uninstall: %s\n' "$*"; }
die() { printf 'uninstall: error: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

PREFIX=/opt/cloud-cli-proxy
CONF_DIR=/etc/cloud-cli-proxy
UNIT_DIR=/etc/systemd/system
SERVICE_USER=cloudproxy
BACKUP_DIR=/var/backups/cloud-cli-proxy

keep_config=0 purge_backups=0
while [ $# -gt 0 ]; do
  case "$1" in
    --keep-config) keep_config=1; shift ;;
    --purge-backups) purge_backups=1; shift ;;
    -h | --help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) printf 'usage: uninstall.sh [--keep-config] [--purge-backups]\n' >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || die "run as root"

if [ -d /run/systemd/system ] && have systemctl; then
  # Every loaded instance (worker@N) and every unit file of ours.
  mapfile -t loaded < <(systemctl list-units --all --plain --no-legend 'cloud-cli-proxy-*' 2>/dev/null | awk '{print $1}')
  for u in "${loaded[@]}" cloud-cli-proxy-backup.timer; do
    [ -n "$u" ] || continue
    systemctl disable --now --quiet "$u" >/dev/null 2>&1 || true
  done
  # Template instances enabled but never started leave wants/ links behind.
  find "$UNIT_DIR" -name 'cloud-cli-proxy-*' \( -type l -o -type f \) -print -delete | sed 's/^/uninstall: removed /'
  systemctl daemon-reload
  systemctl reset-failed 'cloud-cli-proxy-*' >/dev/null 2>&1 || true
else
  find "$UNIT_DIR" -name 'cloud-cli-proxy-*' \( -type l -o -type f \) -print -delete 2>/dev/null | sed 's/^/uninstall: removed /' || true
fi

created_docker_group=0
[ -f "$PREFIX/.install-state" ] && grep -qx 'created_docker_group=1' "$PREFIX/.install-state" && created_docker_group=1
if [ -e "$PREFIX" ]; then
  rm -rf -- "$PREFIX" "$PREFIX.old"
  say "removed $PREFIX"
fi
if id -u "$SERVICE_USER" >/dev/null 2>&1; then
  userdel "$SERVICE_USER"
  say "removed user $SERVICE_USER"
fi
getent group "$SERVICE_USER" >/dev/null && groupdel "$SERVICE_USER"
if [ "$created_docker_group" = 1 ] && getent group docker >/dev/null; then
  groupdel docker
  say "removed group docker (install.sh had created it)"
fi
if [ "$keep_config" = 0 ] && [ -e "$CONF_DIR" ]; then
  rm -rf -- "$CONF_DIR"
  say "removed $CONF_DIR"
fi
if [ -d "$BACKUP_DIR" ]; then
  if [ "$purge_backups" = 1 ]; then
    rm -rf -- "$BACKUP_DIR"
    say "removed $BACKUP_DIR"
  else
    say "kept the backups in $BACKUP_DIR (--purge-backups deletes them)"
  fi
fi
say "done"
