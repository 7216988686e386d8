#!/usr/bin/env bash
# `npm run up`: set up, then run the whole stack (api + worker + sshd) in the foreground.
#
#   CCP_WITH_LAB=1 npm run up   also starts the egress test lab (test/lab/up.sh) and points the
#                               worker's egress settings at it, so an egress can be created,
#                               bound and tested on this one machine (walkthrough: test/lab/README.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

bash deploy/scripts/setup.sh

if [ "${CCP_WITH_LAB:-}" = 1 ]; then
  bash test/lab/up.sh
  state="${CCP_LAB_STATE:-/tmp/ccp-lab}"
  # KEY=VALUE lines written by the lab itself (documentation addresses only); exported so they
  # win over .env for this run.
  while IFS='=' read -r key value; do
    case "$key" in
      EGRESS_* | MGMT_NETWORK | MGMT_SUBNET) export "$key=$value" ;;
    esac
  done <"$state/egress.env"
  echo "up: egress settings point at the lab ($state/egress.env)"
fi

exec node dist/main.js
