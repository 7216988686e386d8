#!/usr/bin/env bash
# cloud-cli-proxy bootstrap: signs you in, starts your host and connects you to it over SSH.
#   curl -sSf <server>/v1/bootstrap/script | bash
# Prompts on the terminal; CCP_USERNAME and CCP_PASSWORD replace the prompts, CCP_TIMEOUT (seconds,
# default 180) bounds the wait for the host. Exit codes: 10 wrong credentials, 11 account disabled,
# 12 account expired, 13 no host, 14 start failed, 15 SSH not ready, 16 egress binding missing,
# 1 other errors, 2 network errors.
set -euo pipefail
umask 077

BASE_URL=__CCP_BASE_URL__

# ccp:include lib.sh

main() {
  local username='' password='' body task_id status_url host port user ticket line
  ccp_require_tools
  if [[ -n ${CCP_USERNAME:-} ]]; then username=$CCP_USERNAME; else ccp_read_tty username 'Username: ' 0; fi
  if [[ -n ${CCP_PASSWORD:-} ]]; then password=$CCP_PASSWORD; else ccp_read_tty password 'Password: ' 1; fi
  # Kept in this shell's memory only: not inherited by curl or ssh.
  unset CCP_PASSWORD
  [[ -n $username && -n $password ]] || ccp_die 1 "Error: a username and a password are required."

  body="{\"username\":$(ccp_json_string "$username"),\"password\":$(ccp_json_string "$password")}"
  ccp_request POST /v1/bootstrap/sessions "$body" || ccp_unreachable
  [[ $CCP_STATUS == 200 ]] || ccp_fail_response
  task_id=$(ccp_json_get task_id "$CCP_BODY") || ccp_die 2 "Error: unexpected answer from $BASE_URL."
  status_url=$(ccp_json_get status_url "$CCP_BODY") || ccp_die 2 "Error: unexpected answer from $BASE_URL."
  [[ $task_id =~ ^[0-9a-f-]+$ ]] || ccp_die 2 "Error: unexpected answer from $BASE_URL."
  printf 'Task %s\n' "$task_id"

  ccp_wait_task "$status_url"

  ccp_request GET "/v1/bootstrap/tasks/$task_id/handoff" || ccp_unreachable
  [[ $CCP_STATUS == 200 ]] || ccp_fail_response
  host=$(ccp_json_get host "$CCP_BODY") && port=$(ccp_json_get port "$CCP_BODY") &&
    user=$(ccp_json_get user "$CCP_BODY") && ticket=$(ccp_json_get password "$CCP_BODY") &&
    line=$(ccp_json_get known_hosts_line "$CCP_BODY") || ccp_die 2 "Error: unexpected answer from $BASE_URL."
  ccp_connect "$user" "$host" "$port" "$line" "$ticket"
}

# Everything is inside main, so bash has read the whole script before running any of it.
main "$@"
