# Shared by backup.sh and restore.sh (sourced, never run). The caller defines `die`.
#
# ccp_load_database_url — sets DATABASE_URL from the environment, else from ENV_FILE (default
#   /etc/cloud-cli-proxy/env). The file is read, never sourced: only a `DATABASE_URL=` line is
#   looked at, so nothing else in it can run.
# ccp_pg_connect — sets CCP_PG_DSN (DATABASE_URL without its password) and exports PGPASSWORD,
#   so the password never appears in the argv of pg_dump / pg_restore / psql (visible in `ps`).
# ccp_secrets_notice — what a dump does not contain (docs/operations.md#backup).

ccp_read_env_file_url() {
  local file=$1 line value="" found=0
  local re_line='^[[:space:]]*(export[[:space:]]+)?DATABASE_URL[[:space:]]*=(.*)$'
  local re_dq='^"(.*)"$' re_sq="^'(.*)'\$"
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%$'\r'}
    # The last assignment wins, as it would for systemd and for a shell.
    if [[ $line =~ $re_line ]]; then
      value=${BASH_REMATCH[2]}
      found=1
    fi
  done <"$file"
  [ "$found" = 1 ] || return 1
  value="${value#"${value%%[![:space:]]*}"}"
  value="${value%"${value##*[![:space:]]}"}"
  if [[ $value =~ $re_dq ]] || [[ $value =~ $re_sq ]]; then value=${BASH_REMATCH[1]}; fi
  printf '%s' "$value"
}

ccp_load_database_url() {
  if [ -z "${DATABASE_URL:-}" ]; then
    local file=${ENV_FILE:-/etc/cloud-cli-proxy/env}
    [ -e "$file" ] || die "DATABASE_URL is not set and $file does not exist (set DATABASE_URL or ENV_FILE)"
    [ -r "$file" ] || die "DATABASE_URL is not set and $file is not readable (run as root?)"
    DATABASE_URL=$(ccp_read_env_file_url "$file") || die "DATABASE_URL is not set and $file has no DATABASE_URL= line"
    [ -n "$DATABASE_URL" ] || die "DATABASE_URL in $file is empty"
  fi
  local re='^postgres(ql)?://'
  [[ $DATABASE_URL =~ $re ]] || die "DATABASE_URL must be a postgres:// URL"
}

# Percent-decode $1 into the global CCP_DECODED (printf -v keeps trailing newlines and bytes).
ccp_percent_decode() {
  local s=$1 out="" ch
  local re='^([^%]*)%([0-9A-Fa-f]{2})(.*)$'
  while [[ $s =~ $re ]]; do
    printf -v ch "\\x${BASH_REMATCH[2]}"
    out+="${BASH_REMATCH[1]}$ch"
    s=${BASH_REMATCH[3]}
  done
  CCP_DECODED="$out$s"
}

ccp_pg_connect() {
  # userinfo is everything up to the last '@' before the first '/', '?' or '#'; libpq parses the
  # rest (host lists, IPv6, query parameters such as sslmode) exactly as it would the full URL.
  local re='^(postgres(ql)?://)(([^/?#]*)@)?(.*)$'
  [[ $DATABASE_URL =~ $re ]] || die "DATABASE_URL must be a postgres:// URL"
  local scheme=${BASH_REMATCH[1]} userinfo=${BASH_REMATCH[4]} rest=${BASH_REMATCH[5]}
  local user=$userinfo
  if [[ $userinfo == *:* ]]; then
    user=${userinfo%%:*}
    ccp_percent_decode "${userinfo#*:}"
    export PGPASSWORD=$CCP_DECODED
  fi
  if [ -n "$user" ]; then CCP_PG_DSN="$scheme$user@$rest"; else CCP_PG_DSN="$scheme$rest"; fi
  # A dead host should fail the script, not hang it (cron).
  export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10}
}

# The database name and host, for messages (never the password).
ccp_pg_target() {
  psql -X -q -At --no-password -d "$CCP_PG_DSN" -c "select current_database() || ' on ' || coalesce(host(inet_server_addr()), 'the local socket')" 2>/dev/null || printf 'the database in DATABASE_URL'
}

ccp_secrets_notice() {
  cat <<'EOF'
note: a database dump does NOT contain SECRETS_KEY (nor ADMIN_JWT_SECRET). Keep the SECRETS_KEY
      that was current when the dump was taken (or a later key that still lists it in
      SECRETS_KEY_PREVIOUS) separately: without it the stored secrets cannot be decrypted.
      Home volumes are not part of the database backup.
EOF
}
