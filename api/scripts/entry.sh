#!/usr/bin/env bash
# cloud-cli-proxy entry link: connects you to host __CCP_SHORT_ID__ over SSH, starting it if needed.
#   curl -sSf <server>/entry/<short id> | bash
# Prompts for your login password on the terminal; CCP_PASSWORD replaces the prompt, CCP_TIMEOUT
# (seconds, default 180) bounds the wait for the host. Exit codes: 10 wrong password, 11 account
# disabled, 12 account expired, 13 no host, 14 start failed, 15 SSH not ready, 16 egress binding
# missing, 1 other errors, 2 network errors.
set -euo pipefail
umask 077

BASE_URL=__CCP_BASE_URL__
SHORT_ID=__CCP_SHORT_ID__

# ccp:include lib.sh

main() {
  local password='' body attempt task_id status_url user host port ticket line
  ccp_require_tools
  if [[ -n ${CCP_PASSWORD:-} ]]; then password=$CCP_PASSWORD; else ccp_read_tty password "Password for $SHORT_ID: " 1; fi
  # Kept in this shell's memory only (for the second sign-in below): not inherited by curl or ssh.
  unset CCP_PASSWORD
  [[ -n $password ]] || ccp_die 1 "Error: a password is required."
  body="{\"password\":$(ccp_json_string "$password")}"

  # A stopped host is started first (202), then the sign-in is repeated once.
  for attempt in 1 2; do
    ccp_request POST "/v1/entry/$SHORT_ID/auth" "$body" || ccp_unreachable
    case $CCP_STATUS in
      200)
        user=$(ccp_json_get ssh_user "$CCP_BODY") && host=$(ccp_json_get ssh_host "$CCP_BODY") &&
          port=$(ccp_json_get ssh_port "$CCP_BODY") && ticket=$(ccp_json_get ssh_ticket "$CCP_BODY") &&
          line=$(ccp_json_get known_hosts_line "$CCP_BODY") || ccp_die 2 "Error: unexpected answer from $BASE_URL."
        # A one-time ticket for this login, never the host's SSH password: the sign-in password
        # is dropped before ssh starts.
        password=''
        ccp_connect "$user" "$host" "$port" "$line" "$ticket"
        ;;
      202)
        (( attempt == 1 )) || ccp_die 15 "Error: your host is still starting; try again shortly (ssh_not_ready)."
        task_id=$(ccp_json_get task_id "$CCP_BODY") && status_url=$(ccp_json_get status_url "$CCP_BODY") ||
          ccp_die 2 "Error: unexpected answer from $BASE_URL."
        printf 'Starting host %s\nTask %s\n' "$SHORT_ID" "$(ccp_clean "$task_id")"
        ccp_wait_task "$status_url"
        ;;
      *) ccp_fail_response ;;
    esac
  done
}

# Everything is inside main, so bash has read the whole script before running any of it.
main "$@"
