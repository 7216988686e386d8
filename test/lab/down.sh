#!/usr/bin/env bash
# Removes the test lab: every container and network labelled cloud-cli-proxy.lab=true (the
# ccp-lab-* servers, test clients started with that label, ccp-lab-inet, ccp-lab-mgmt), and
# nothing else. The image and the state directory (secrets, lab.json) are kept, so the next
# up.sh is quick and egresses created from lab.json stay valid.
#
#   bash test/lab/down.sh            (npm run lab:down)
#   bash test/lab/down.sh --force    also disconnects other containers still attached to a lab
#                                    network (e.g. gateways a test left behind) instead of failing
#   bash test/lab/down.sh --purge    also deletes $CCP_LAB_STATE (default /tmp/ccp-lab)
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FORCE=0 PURGE=0
for a in "$@"; do
  case $a in
    --force) FORCE=1 ;;
    --purge) PURGE=1 ;;
    *) lab_die "usage: $0 [--force] [--purge]" ;;
  esac
done

command -v docker >/dev/null 2>&1 || lab_die "docker not found"
timeout 15 docker info >/dev/null 2>&1 || lab_die "the docker engine does not answer (docker info)"
lab_state_abs
lab_lock

mapfile -t ids < <(docker ps -aq --filter "label=$LAB_LABEL=true")
if [ ${#ids[@]} -gt 0 ]; then
  docker rm -f "${ids[@]}" >/dev/null
  lab_say "removed ${#ids[@]} container(s)"
fi

# The /32 routes up.sh pinned past the lab's bridge (see pin_outside_routes there).
if [ -f "$LAB_STATE/pinned-routes" ]; then
  while read -r addr; do
    [ -z "$addr" ] || ip route del "$addr/32" 2>/dev/null || true
  done <"$LAB_STATE/pinned-routes"
  rm -f "$LAB_STATE/pinned-routes"
fi

rc=0
mapfile -t nets < <(docker network ls --filter "label=$LAB_LABEL=true" --format '{{.Name}}')
for net in "${nets[@]}"; do
  mapfile -t attached < <(docker network inspect -f '{{range .Containers}}{{.Name}}{{"\n"}}{{end}}' "$net" | sed '/^$/d')
  if [ ${#attached[@]} -gt 0 ]; then
    if [ "$FORCE" = 1 ]; then
      for c in "${attached[@]}"; do docker network disconnect -f "$net" "$c" >/dev/null 2>&1 || true; done
      lab_say "disconnected from $net: ${attached[*]}"
    else
      printf 'lab: error: %s still has containers attached: %s (remove them, or use --force)\n' \
        "$net" "${attached[*]}" >&2
      rc=1
      continue
    fi
  fi
  docker network rm "$net" >/dev/null && lab_say "removed network $net" || rc=1
done

if [ "$PURGE" = 1 ] && [ -d "$LAB_STATE" ]; then
  if [ -f "$LAB_STATE/.ccp-lab" ]; then
    rm -rf -- "$LAB_STATE"
    lab_say "removed $LAB_STATE"
  else
    printf 'lab: error: %s is not a lab state directory (no .ccp-lab marker); left alone\n' "$LAB_STATE" >&2
    rc=1
  fi
fi
exit $rc
