#!/usr/bin/env bash
# Back up the cloud-cli-proxy database (docs/operations.md#backup):
#
#   sudo bash deploy/scripts/backup.sh
#   BACKUP_DIR=/data/backups RETENTION_DAYS=30 bash deploy/scripts/backup.sh
#
# DATABASE_URL comes from the environment, else from ENV_FILE (default /etc/cloud-cli-proxy/env).
# Writes BACKUP_DIR/cloud-cli-proxy_<UTC YYYYmmddTHHMMSSZ>.dump (pg_dump custom format, mode
# 0600), then deletes dumps older than RETENTION_DAYS days, but never the newest one. Any failure:
# message on stderr, no partial file, non-zero exit, and nothing deleted.
set -euo pipefail

say() { printf 'backup: %s\n' "$*"; }
die() { printf 'backup: error: %s\n' "$*" >&2; exit 1; }

case "${1-}" in
  "") ;;
  -h | --help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) printf 'usage: backup.sh (settings come from the environment; see --help)\n' >&2; exit 2 ;;
esac

# shellcheck source=lib/database-url.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/database-url.sh"

BACKUP_DIR=${BACKUP_DIR:-/var/backups/cloud-cli-proxy}
RETENTION_DAYS=${RETENTION_DAYS:-7}
# Validated before anything happens; six digits keep the minute arithmetic far from overflow.
[[ $RETENTION_DAYS =~ ^[0-9]{1,6}$ ]] && ((10#$RETENTION_DAYS > 0)) ||
  die "RETENTION_DAYS must be a positive integer (got '$RETENTION_DAYS')"
RETENTION_DAYS=$((10#$RETENTION_DAYS))

ccp_load_database_url
ccp_pg_connect
command -v pg_dump >/dev/null 2>&1 || die "pg_dump not found (apt-get install postgresql-client)"
command -v pg_restore >/dev/null 2>&1 || die "pg_restore not found (apt-get install postgresql-client)"

# -m applies to BACKUP_DIR itself; parents, if any, get the ordinary mode.
mkdir -p -m 0700 -- "$BACKUP_DIR" 2>/dev/null || die "cannot create $BACKUP_DIR"
[ -d "$BACKUP_DIR" ] && [ -w "$BACKUP_DIR" ] || die "$BACKUP_DIR is not a writable directory"
umask 077

# The name is the dump's start time (the snapshot pg_dump takes). Two runs in the same second
# would collide: wait for the next second rather than overwrite.
for _ in 1 2 3; do
  final="$BACKUP_DIR/cloud-cli-proxy_$(date -u +%Y%m%dT%H%M%SZ).dump"
  [ -e "$final" ] || break
  sleep 1
done
[ ! -e "$final" ] || die "$final already exists"

# The temporary name does not match cloud-cli-proxy_*.dump, so neither retention nor a restore
# can ever pick up a partial dump; the EXIT trap removes it on every failure and on signals.
tmp=$(mktemp "$BACKUP_DIR/.cloud-cli-proxy_partial.XXXXXX" 2>/dev/null) || die "cannot write to $BACKUP_DIR"
cleanup() { [ -z "${tmp:-}" ] || rm -f -- "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pg_dump --format=custom --no-password --file="$tmp" --dbname="$CCP_PG_DSN" ||
  die "pg_dump failed; no backup written, nothing deleted"
# A dump that pg_restore cannot read is no backup.
pg_restore --list "$tmp" >/dev/null || die "the dump cannot be read back; no backup written, nothing deleted"
chmod 0600 -- "$tmp"
mv -f -- "$tmp" "$final" || die "cannot rename the dump to $final"
tmp=

size=$(stat -c %s -- "$final")
say "wrote $final ($size bytes, $(numfmt --to=iec-i --suffix=B "$size" 2>/dev/null || echo "$size B"))"

# Retention. "Newest" is by modification time, and the dump just written is kept as well, so a
# skewed clock or a backdated file can never leave the directory without a backup.
newest=$(find "$BACKUP_DIR" -maxdepth 1 -type f -name 'cloud-cli-proxy_*.dump' -printf '%T@\t%p\0' |
  sort -z -t $'\t' -k1,1n -k2,2 | tail -z -n 1 | cut -z -f2- | tr -d '\0')
failed=0
while IFS= read -r -d '' old; do
  [ "$old" != "$newest" ] && [ "$old" != "$final" ] || continue
  if rm -f -- "$old"; then say "removed $old (older than $RETENTION_DAYS days)"; else failed=1; fi
done < <(find "$BACKUP_DIR" -maxdepth 1 -type f -name 'cloud-cli-proxy_*.dump' -mmin "+$((RETENTION_DAYS * 1440))" -print0)

ccp_secrets_notice
[ "$failed" = 0 ] || die "the backup was written, but some old backups could not be removed"
