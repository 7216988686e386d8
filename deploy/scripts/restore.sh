#!/usr/bin/env bash
# Restore a backup made by backup.sh into DATABASE_URL (docs/operations.md#backup):
#
#   sudo bash deploy/scripts/restore.sh /var/backups/cloud-cli-proxy/cloud-cli-proxy_<ts>.dump
#
#   --yes    do not ask for confirmation (required when there is no terminal)
#   --force  restore even while the api, worker or sshd is connected to the database
#
# DATABASE_URL comes from the environment, else from ENV_FILE (default /etc/cloud-cli-proxy/env).
# Stop the services first (systemctl stop cloud-cli-proxy-control-plane 'cloud-cli-proxy-worker*').
# The restore replaces every object in the dump and runs in one transaction: on failure the
# database is left as it was.
set -euo pipefail

say() { printf 'restore: %s\n' "$*"; }
die() { printf 'restore: error: %s\n' "$*" >&2; exit 1; }
usage() { printf 'usage: restore.sh <file.dump> [--yes] [--force]\n' >&2; exit 2; }

file="" yes=0 force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --yes | -y) yes=1 ;;
    --force) force=1 ;;
    -h | --help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; [ $# -eq 1 ] && [ -z "$file" ] || usage; file=$1 ;;
    -*) usage ;;
    *) [ -z "$file" ] || usage; file=$1 ;;
  esac
  shift
done
[ -n "$file" ] || usage

# shellcheck source=lib/database-url.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/database-url.sh"

command -v pg_restore >/dev/null 2>&1 || die "pg_restore not found (apt-get install postgresql-client)"
command -v psql >/dev/null 2>&1 || die "psql not found (apt-get install postgresql-client)"
[ -f "$file" ] && [ -r "$file" ] || die "$file is not a readable file"
pg_restore --list "$file" >/dev/null 2>&1 || die "$file is not a pg_dump custom-format dump (pg_restore --list failed)"

ccp_load_database_url
ccp_pg_connect

# The application_name each process sets (shared/db/client.ts, via api/worker/sshd main.ts).
connected=$(psql -X -q -At --no-password -v ON_ERROR_STOP=1 -d "$CCP_PG_DSN" -c "
  select application_name || ' (' || count(*) || ' connection' || case when count(*) > 1 then 's' else '' end || ')'
  from pg_stat_activity
  where datname = current_database() and pid <> pg_backend_pid()
    and application_name in ('ccp-api', 'ccp-worker', 'ccp-sshd')
  group by application_name order by application_name") ||
  die "cannot connect to the database in DATABASE_URL"
if [ -n "$connected" ]; then
  if [ "$force" = 1 ]; then
    printf 'restore: warning: restoring while connected: %s\n' "$(echo "$connected" | paste -sd, - | sed 's/,/, /g')" >&2
  else
    die "cloud-cli-proxy processes are connected: $(echo "$connected" | paste -sd, - | sed 's/,/, /g'). Stop them first (systemctl stop cloud-cli-proxy-control-plane 'cloud-cli-proxy-worker*'), or pass --force"
  fi
fi

target=$(ccp_pg_target)
ccp_secrets_notice
if [ "$yes" != 1 ]; then
  # The answer must come from a person at a terminal, never from a pipe (`yes | restore.sh`).
  [ -t 0 ] && { : </dev/tty; } 2>/dev/null || die "no terminal to confirm on: pass --yes to restore non-interactively"
  printf 'restore: this replaces the contents of %s with %s.\nType "yes" to continue: ' "$target" "$file" >/dev/tty
  answer=""
  IFS= read -r answer </dev/tty || true
  [ "$answer" = yes ] || die "not confirmed; nothing changed"
fi

say "restoring $file into $target"
# --single-transaction: all or nothing (it implies --exit-on-error), so a failed restore never
# leaves a half-dropped schema behind.
pg_restore --clean --if-exists --no-owner --single-transaction --no-password -d "$CCP_PG_DSN" "$file" ||
  die "pg_restore failed; the database was left as it was"
say "done. Start the services again; the api applies any newer migrations at start."
