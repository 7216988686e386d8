# ---- shared by the bootstrap and entry scripts (inlined when a script is served) ----

ccp_die() { # ccp_die EXIT_CODE MESSAGE...
  local code=$1
  shift
  printf '%s\n' "$*" >&2
  exit "$code"
}

# Only printable characters from the server reach the terminal.
ccp_clean() { printf '%s' "${1//[^[:print:]]/}"; }

# True when a controlling terminal can be opened (false under cron, CI, `setsid`, ...).
ccp_have_tty() { { : </dev/tty; } 2>/dev/null; }

ccp_require_tools() {
  command -v curl >/dev/null 2>&1 || ccp_die 1 "Error: curl is required but was not found in PATH."
  command -v ssh >/dev/null 2>&1 || ccp_die 1 "Error: ssh (OpenSSH 8.4 or newer) is required but was not found in PATH."
  local version
  version=$(ssh -V 2>&1 </dev/null || true)
  # SSH_ASKPASS_REQUIRE, which hands over the one-time secret without a terminal prompt, is 8.4+.
  if [[ $version =~ OpenSSH_[A-Za-z_]*([0-9]+)\.([0-9]+) ]]; then
    if (( 10#${BASH_REMATCH[1]} < 8 || (10#${BASH_REMATCH[1]} == 8 && 10#${BASH_REMATCH[2]} < 4) )); then
      ccp_die 1 "Error: OpenSSH 8.4 or newer is required (found $(ccp_clean "${version%%,*}"))."
    fi
  else
    ccp_die 1 "Error: OpenSSH 8.4 or newer is required (ssh -V says: $(ccp_clean "${version%%$'\n'*}"))."
  fi
}

# Prints $1 as a JSON string literal: `\`, `"` and control characters escaped, the rest verbatim.
ccp_json_string() {
  local s=$1 out='' c n i
  for (( i = 0; i < ${#s}; i++ )); do
    c=${s:i:1}
    case $c in
      '"') out+='\"' ;;
      '\') out+='\\' ;;
      [[:cntrl:]])
        printf -v n '%d' "'$c"
        printf -v c '\\u%04x' "$n"
        out+=$c
        ;;
      *) out+=$c ;;
    esac
  done
  printf '"%s"' "$out"
}

# ccp_json_get KEY JSON: prints a top-level string or integer field of the API's flat JSON answers.
ccp_json_get() {
  local re_s='[{,]"'"$1"'":"(([^"\\]|\\.)*)"' re_n='[{,]"'"$1"'":(-?[0-9]+)' v
  if [[ $2 =~ $re_s ]]; then
    v=${BASH_REMATCH[1]}
    v=${v//\\\//\/}
    v=${v//\\\"/\"}
    v=${v//\\\\/\\}
    printf '%s' "$v"
  elif [[ $2 =~ $re_n ]]; then
    printf '%s' "${BASH_REMATCH[1]}"
  else
    return 1
  fi
}

# ccp_request METHOD PATH [JSON]: sets CCP_STATUS and CCP_BODY; fails on a network error. A body
# goes to curl on stdin (printf is a builtin), so no secret ever appears in a process's argv.
ccp_request() {
  local method=$1 url=$BASE_URL$2 out
  local -a opts=(-q --silent --show-error --connect-timeout 10 --max-time 30
    -H 'Accept: application/json' --write-out '\n%{http_code}')
  if (( $# > 2 )); then
    out=$(printf '%s' "$3" | curl "${opts[@]}" -X "$method" -H 'Content-Type: application/json' --data-binary @- "$url") || return 1
  else
    out=$(curl "${opts[@]}" -X "$method" "$url") || return 1
  fi
  CCP_STATUS=${out##*$'\n'}
  CCP_BODY=${out%$'\n'*}
}

ccp_unreachable() { ccp_die 2 "Error: could not reach $BASE_URL."; }

# Exit codes of docs/api.md#bootstrap.
ccp_exit_code() {
  case $1 in
    auth_invalid | invalid_credentials) echo 10 ;;
    account_disabled) echo 11 ;;
    account_expired) echo 12 ;;
    host_not_found) echo 13 ;;
    start_failed) echo 14 ;;
    ssh_not_ready) echo 15 ;;
    egress_binding_missing) echo 16 ;;
    *) echo 1 ;;
  esac
}

# After an error answer: its message and the exit code of its error_code; without one, exit 2.
ccp_fail_response() {
  local code msg
  if code=$(ccp_json_get error_code "$CCP_BODY"); then
    msg=$(ccp_json_get message "$CCP_BODY") || msg=$code
    ccp_die "$(ccp_exit_code "$code")" "Error: $(ccp_clean "$msg") ($(ccp_clean "$code"))"
  fi
  ccp_die 2 "Error: unexpected answer from $BASE_URL (HTTP $(ccp_clean "$CCP_STATUS"))."
}

# ccp_wait_task STATUS_PATH: polls every 2 s until the task succeeded; exits on failure or timeout.
ccp_wait_task() {
  local path=$1 timeout=${CCP_TIMEOUT:-180} started=$SECONDS last='' stage status pct text code msg
  [[ $timeout =~ ^[0-9]+$ ]] || ccp_die 1 "Error: CCP_TIMEOUT must be a whole number of seconds."
  [[ $path =~ ^/v1/bootstrap/tasks/[0-9a-f-]+$ ]] || ccp_die 2 "Error: unexpected answer from $BASE_URL."
  while :; do
    ccp_request GET "$path" || ccp_unreachable
    [[ $CCP_STATUS == 200 ]] || ccp_fail_response
    stage=$(ccp_json_get stage_code "$CCP_BODY") || stage=''
    status=$(ccp_json_get task_status "$CCP_BODY") || status=''
    pct=$(ccp_json_get progress_percent "$CCP_BODY") || pct=0
    text=$(ccp_json_get stage_text "$CCP_BODY") || text=$stage
    if [[ "$stage:$pct" != "$last" ]]; then
      printf '[%3d%%] %s\n' "$pct" "$(ccp_clean "$text")"
      last="$stage:$pct"
    fi
    if [[ $stage == failed ]]; then
      code=$(ccp_json_get error_code "$CCP_BODY") || code=start_failed
      msg=$(ccp_json_get error_message "$CCP_BODY") || msg='your host failed to start'
      ccp_die "$(ccp_exit_code "$code")" "Error: $(ccp_clean "$msg") ($(ccp_clean "$code"))"
    fi
    if [[ $status == succeeded ]]; then return 0; fi
    if (( SECONDS - started >= timeout )); then
      ccp_die 15 "Error: your host was not ready within ${timeout}s (ssh_not_ready)."
    fi
    sleep 2
  done
}

# ccp_connect USER HOST PORT KNOWN_HOSTS_LINE SECRET: replaces this script with ssh. The secret
# reaches ssh only through the askpass helper, which reads it from the environment.
ccp_connect() {
  local user=$1 host=$2 port=$3 line=$4 dir
  # Values that end up in ssh's argv must not be able to pass for options.
  [[ $user =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ && $host =~ ^[A-Za-z0-9][A-Za-z0-9.:_-]*$ && $port =~ ^[0-9]+$ ]] ||
    ccp_die 2 "Error: unexpected answer from $BASE_URL."
  dir=$(mktemp -d "${TMPDIR:-/tmp}/ccp.XXXXXXXXXX") || ccp_die 1 "Error: could not create a temporary directory."
  chmod 700 "$dir"
  printf '%s\n' "$line" >"$dir/known_hosts"
  printf '%s\n' '#!/bin/sh' 'printf '\''%s\n'\'' "$CCP_SSH_SECRET"' >"$dir/askpass"
  chmod 700 "$dir/askpass"
  # ssh reads both files at start; remove them later. HUP is ignored so that closing the terminal
  # early does not skip the removal. Started before the secret is exported, so it never holds it.
  (
    trap '' HUP
    sleep 30
    rm -rf -- "$dir"
  ) </dev/null >/dev/null 2>&1 &
  export CCP_SSH_SECRET=$5
  export SSH_ASKPASS=$dir/askpass SSH_ASKPASS_REQUIRE=force
  local -a args=(-o "UserKnownHostsFile=$dir/known_hosts" -o StrictHostKeyChecking=yes
    -o PubkeyAuthentication=no -o PreferredAuthentications=password,keyboard-interactive
    -o NumberOfPasswordPrompts=1 -p "$port" "$user@$host")
  printf 'Connecting to %s@%s (port %s)...\n' "$user" "$host" "$port"
  if ccp_have_tty; then
    exec ssh "${args[@]}" </dev/tty
  fi
  exec ssh "${args[@]}"
}

# ccp_read_tty VAR PROMPT SILENT: reads a line from the terminal (without echo when SILENT is 1).
ccp_read_tty() {
  ccp_have_tty || ccp_die 1 "Error: no terminal to prompt on; run this in a terminal, or set CCP_USERNAME and CCP_PASSWORD."
  local __value=''
  printf '%s' "$2" >/dev/tty
  if [[ $3 == 1 ]]; then
    IFS= read -rs __value </dev/tty || true
    printf '\n' >/dev/tty
  else
    IFS= read -r __value </dev/tty || true
  fi
  printf -v "$1" '%s' "$__value"
}

# ---- end of the shared part ----
