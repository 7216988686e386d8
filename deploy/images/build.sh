#!/usr/bin/env bash
# Builds the local images, with no registry needed:
#
#   cloud-cli-proxy/base:bookworm   Debian bookworm: `docker pull debian:bookworm-slim` when a
#                                   registry answers, else debootstrap (minbase) from this machine's
#                                   apt mirror + `docker import`; then deploy/images/base/ on top,
#                                   with this machine's Debian apt sources written into it
#   cloud-cli-proxy/host:latest     deploy/images/host/     (FROM the base)
#   cloud-cli-proxy/gateway:latest  deploy/images/gateway/  (FROM the base)
#
# and with --with-compose-images also docker-compose.yml's Postgres and Redis, from Debian's
# packages (so that `docker compose up` needs no registry either; normal setup skips them):
#
#   cloud-cli-proxy/postgres:15     deploy/images/postgres/ (FROM the base)
#   cloud-cli-proxy/redis:7         deploy/images/redis/    (FROM the base)
#
#   bash deploy/images/build.sh [--force] [--with-compose-images]
#
# Every image carries the label cloud-cli-proxy.content-hash=<sha256 over everything that goes
# into it, its parent's hash included>. An image whose tag already carries the expected hash is
# not rebuilt, so a second run takes about a second. --force rebuilds every image it builds.
#
# The apt sources inside the images come from this machine (/etc/apt/sources.list and
# /etc/apt/sources.list.d/*.{list,sources}: the Debian entries for bookworm), rendered into the
# build context at build time; they are never taken from the repository.
#
# Prints one line per image and, while an image builds, one line per build step with the seconds
# since that build began ("images: host: step 3/9 RUN apt-get install … (45 s)"). A failed build
# prints the tail of its log and exits non-zero.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

say() { printf 'images: %s\n' "$*"; }
die() { printf 'images: error: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

RELEASE=bookworm
BASE_TAG=cloud-cli-proxy/base:$RELEASE
HOST_TAG=cloud-cli-proxy/host:latest
GATEWAY_TAG=cloud-cli-proxy/gateway:latest
# Intermediate tag of the raw root filesystem (pulled or imported); removed after the base build.
ROOTFS_TAG=cloud-cli-proxy/base-rootfs:$RELEASE
HASH_LABEL=cloud-cli-proxy.content-hash
DEBIAN_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

POSTGRES_TAG=cloud-cli-proxy/postgres:15
REDIS_TAG=cloud-cli-proxy/redis:7

FORCE=0
COMPOSE_IMAGES=0
for arg in "$@"; do
  case $arg in
    --force) FORCE=1 ;;
    --with-compose-images) COMPOSE_IMAGES=1 ;;
    *) die "usage: $0 [--force] [--with-compose-images]" ;;
  esac
done

have docker || die "docker not found"
timeout 15 docker info >/dev/null 2>&1 || die "the docker engine does not answer (docker info)"

# Debian's docker.io may come without buildx; the legacy builder needs no plugin.
# --force-rm: the legacy builder also removes the containers of failed steps.
if docker buildx version >/dev/null 2>&1; then
  BUILD=(docker build)
else
  BUILD=(env DOCKER_BUILDKIT=0 docker build --force-rm)
fi

WORK=$(mktemp -d /var/tmp/ccp-images.XXXXXX)
ROOTFS_DIR=""
cleanup() {
  if [ -n "$ROOTFS_DIR" ] && [ -d "$ROOTFS_DIR" ]; then remove_rootfs_dir; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# One build at a time on this machine (CI and a developer may run setup concurrently).
if have flock && { exec 9>>/var/lock/ccp-images.lock; } 2>/dev/null; then flock 9; fi

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
short() { printf '%s' "${1:0:12}"; }

image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }
image_hash() { docker image inspect -f "{{ index .Config.Labels \"$HASH_LABEL\" }}" "$1" 2>/dev/null || true; }
up_to_date() { [ "$FORCE" = 0 ] && [ "$(image_hash "$1")" = "$2" ]; }

# files_hash DIR — sha256 over the relative paths and contents of every file under DIR.
files_hash() {
  (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum) | sha256sum | cut -d' ' -f1
}

# ----------------------------------------------------------------------------------------------
# This machine's Debian apt sources, as one deb822 file (stdout)
# ----------------------------------------------------------------------------------------------
# Takes the `deb` entries (one-line and deb822 formats) whose suite is $RELEASE or $RELEASE-*
# and that are signed by the Debian archive keyring (or name no keyring); other repositories
# (third-party keyrings, other releases, cdrom) are left out. Entries are grouped by URI and
# components, in the order apt reads them.
machine_sources() {
  local files=() f
  # sources.list first, then sources.list.d/ by name, as apt reads them.
  [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
  while IFS= read -r f; do
    [ -f "$f" ] && files+=("$f")
  done < <(printf '%s\n' /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources | LC_ALL=C sort)
  [ ${#files[@]} -gt 0 ] || return 0
  awk -v rel="$RELEASE" -v keyring="$DEBIAN_KEYRING" '
    function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
    function suite_ok(s) { return s == rel || index(s, rel "-") == 1 }
    function key_ok(k) { return k == "" || k ~ /^\/[^ ]*debian-archive[^ ]*$/ }
    function add(uri, suite, comps,   k) {
      if (uri !~ /^(https?|ftp|file):/) return
      sub(/\/+$/, "", uri)
      comps = trim(comps)
      if (comps == "") return
      k = uri "|" comps
      if (!(k in suites)) { order[++n] = k; guri[k] = uri; gcomps[k] = comps; suites[k] = "" }
      if (index(" " suites[k] " ", " " suite " ") == 0) suites[k] = trim(suites[k] " " suite)
    }
    function end_stanza(   i, j, nu, ns, u, s) {
      if (index(" " st["types"] " ", " deb ") && tolower(st["enabled"]) != "no" && key_ok(st["signed-by"])) {
        nu = split(st["uris"], u, /[ \t]+/)
        ns = split(st["suites"], s, /[ \t]+/)
        for (i = 1; i <= nu; i++)
          for (j = 1; j <= ns; j++)
            if (u[i] != "" && suite_ok(s[j])) add(u[i], s[j], st["components"])
      }
      delete st
      last = ""
    }
    FNR == 1 { if (in822) end_stanza(); in822 = (FILENAME ~ /\.sources$/) }
    in822 {
      if ($0 ~ /^#/) next
      if ($0 ~ /^[ \t]*$/) { end_stanza(); next }
      if ($0 ~ /^[ \t]/) { if (last != "") st[last] = st[last] " " trim($0); next }
      i = index($0, ":")
      if (i == 0) next
      last = tolower(trim(substr($0, 1, i - 1)))
      st[last] = trim(substr($0, i + 1))
      next
    }
    {
      line = $0
      sub(/#.*/, "", line)
      nw = split(trim(line), w, /[ \t]+/)
      if (nw < 3 || w[1] != "deb") next
      i = 2
      key = ""
      if (w[2] ~ /^\[/) {
        opts = ""
        for (; i <= nw; i++) { opts = opts " " w[i]; if (w[i] ~ /\]$/) { i++; break } }
        gsub(/[\[\]]/, " ", opts)
        no = split(opts, o, /[ \t]+/)
        for (j = 1; j <= no; j++) if (tolower(o[j]) ~ /^signed-by=/) key = substr(o[j], 11)
      }
      if (!key_ok(key) || i + 2 > nw) next
      comps = ""
      for (j = i + 2; j <= nw; j++) comps = comps " " w[j]
      if (suite_ok(w[i + 1])) add(w[i], w[i + 1], comps)
    }
    END {
      if (in822) end_stanza()
      for (i = 1; i <= n; i++) {
        k = order[i]
        if (i > 1) print ""
        print "Types: deb"
        print "URIs: " guri[k]
        print "Suites: " suites[k]
        print "Components: " gcomps[k]
        print "Signed-By: " keyring
      }
    }
  ' "${files[@]}"
}

# mirror_uri SOURCES_FILE — the first URI that carries the release suite itself.
mirror_uri() {
  awk -v rel="$RELEASE" '
    /^URIs: / { uri = $2 }
    /^Suites: / { for (i = 2; i <= NF; i++) if ($i == rel) { print uri; exit } }
  ' "$1"
}

# ----------------------------------------------------------------------------------------------
# Building
# ----------------------------------------------------------------------------------------------
OLD_IDS=()

# progress LABEL LOG — copies a build's output (stdin) to LOG and prints one line per build step
# with the seconds since the build began: the legacy builder's "Step 3/9 : RUN …" and BuildKit's
# plain "#7 [3/9] RUN …" (each step once, cached steps included). The output itself stays in LOG.
progress() {
  local label=$1 log=$2 line key what seen=$'\n' t0=$SECONDS
  while IFS= read -r line || [ -n "$line" ]; do
    printf '%s\n' "$line" >>"$log"
    if [[ $line =~ ^Step\ ([0-9]+/[0-9]+)\ :\ (.*)$ ]]; then
      key=${BASH_REMATCH[1]} what=${BASH_REMATCH[2]}
    elif [[ $line =~ ^#[0-9]+\ \[([^]]*[0-9]+/[0-9]+)\]\ (.*)$ ]]; then
      key=${BASH_REMATCH[1]} what=${BASH_REMATCH[2]}
    else
      continue
    fi
    case $seen in *$'\n'"$key"$'\n'*) continue ;; esac
    seen+="$key"$'\n'
    what=${what//$'\t'/ }
    while [[ $what == *"  "* ]]; do what=${what//  / }; done
    [ "${#what}" -le 72 ] || what="${what:0:71}…"
    say "$label: step $key $what ($((SECONDS - t0)) s)"
  done
  return 0
}

# docker_build TAG HASH CONTEXT [docker build arguments...]
docker_build() {
  local tag=$1 hash=$2 ctx=$3
  shift 3
  local log=$WORK/build-${tag//[\/:]/_}.log old label=${tag#cloud-cli-proxy/}
  label=${label%%:*}
  old=$(image_id "$tag")
  : >"$log"
  # --network host: RUN steps use this machine's resolver and routes directly (no NAT, no
  # Docker DNS fallback), which is what reaches the apt mirror here.
  if ! "${BUILD[@]}" --network host --label "$HASH_LABEL=$hash" -t "$tag" "$@" "$ctx" 2>&1 |
    progress "$label" "$log"; then
    tail -n 40 "$log" >&2
    die "building $tag failed (the last 40 lines of the build log are above)"
  fi
  [ -n "$old" ] && [ "$old" != "$(image_id "$tag")" ] && OLD_IDS+=("$old")
  return 0
}

# Unmounts anything debootstrap may have left mounted in the rootfs, then removes it.
remove_rootfs_dir() {
  local m
  while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done < <(awk -v d="$ROOTFS_DIR" 'index($2, d "/") == 1 { print $2 }' /proc/mounts | sort -r)
  rm -rf --one-file-system "$ROOTFS_DIR"
  ROOTFS_DIR=""
}

# Tags $ROOTFS_TAG with a plain Debian root filesystem; sets ROOTFS_HOW.
ROOTFS_HOW=""
obtain_rootfs() {
  # The daemon's default registry, when one answers (never on the dev/CI machines).
  if timeout 20 docker pull -q "debian:$RELEASE-slim" >/dev/null 2>&1; then
    docker tag "debian:$RELEASE-slim" "$ROOTFS_TAG"
    ROOTFS_HOW="pulled debian:$RELEASE-slim"
    return 0
  fi
  have debootstrap || die "no registry answers and debootstrap is missing (apt-get install debootstrap)"
  [ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
  local mirror
  mirror=$(mirror_uri "$WORK/base/debian.sources")
  [ -n "$mirror" ] || die "no Debian mirror for $RELEASE in this machine's apt sources"
  local attempt log=$WORK/debootstrap.log
  say "base: no registry answers: debootstrap $RELEASE from $mirror (a few minutes)"
  for attempt in 1 2 3; do
    ROOTFS_DIR=$(mktemp -d /var/tmp/ccp-rootfs.XXXXXX)
    if debootstrap --variant=minbase "$RELEASE" "$ROOTFS_DIR" "$mirror" >"$log" 2>&1; then
      break
    fi
    remove_rootfs_dir
    if [ "$attempt" -eq 3 ]; then
      tail -n 20 "$log" >&2
      die "debootstrap $RELEASE from $mirror failed 3 times"
    fi
    sleep 5
  done
  # Host-specific files debootstrap copied in; Docker provides its own at run time.
  (
    cd "$ROOTFS_DIR"
    rm -rf var/cache/apt/archives/*.deb var/cache/apt/*.bin var/lib/apt/lists/* debootstrap
    rm -f etc/apt/sources.list etc/resolv.conf etc/hostname
    : >etc/resolv.conf
    printf 'localhost\n' >etc/hostname
  )
  tar --numeric-owner -C "$ROOTFS_DIR" -c . |
    docker import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$ROOTFS_TAG" >/dev/null
  remove_rootfs_dir
  ROOTFS_HOW="debootstrap from $mirror"
}

build_base() {
  local ctx=$WORK/base
  mkdir -p "$ctx"
  cp -a deploy/images/base/. "$ctx/"
  machine_sources >"$ctx/debian.sources"
  [ -s "$ctx/debian.sources" ] ||
    die "no Debian $RELEASE entries in /etc/apt/sources.list{,.d/*.list,.d/*.sources}"
  # The release, the machine's sources and the recipe: stable across runs, whatever the rootfs
  # came from.
  BASE_HASH=$(printf 'release=%s\nrecipe=%s\n' "$RELEASE" "$(files_hash "$ctx")" | sha256sum | cut -d' ' -f1)
  if up_to_date "$BASE_TAG" "$BASE_HASH"; then
    say "$BASE_TAG up to date (content-hash $(short "$BASE_HASH"))"
    return 0
  fi
  local t0
  t0=$(now)
  obtain_rootfs
  docker_build "$BASE_TAG" "$BASE_HASH" "$ctx" --build-arg "ROOTFS=$ROOTFS_TAG"
  docker rmi "$ROOTFS_TAG" >/dev/null 2>&1 || true
  say "$BASE_TAG built in $(elapsed "$t0") ($ROOTFS_HOW; content-hash $(short "$BASE_HASH"))"
}

# build_child NAME TAG — deploy/images/NAME/ on top of the base.
build_child() {
  local name=$1 tag=$2 ctx=$WORK/$1 hash
  mkdir -p "$ctx"
  cp -a "deploy/images/$name/." "$ctx/"
  hash=$(printf 'parent=%s\nfiles=%s\n' "$BASE_HASH" "$(files_hash "$ctx")" | sha256sum | cut -d' ' -f1)
  if up_to_date "$tag" "$hash"; then
    say "$tag up to date (content-hash $(short "$hash"))"
    return 0
  fi
  local t0
  t0=$(now)
  docker_build "$tag" "$hash" "$ctx"
  say "$tag built in $(elapsed "$t0") (content-hash $(short "$hash"))"
}

build_base
build_child host "$HOST_TAG"
build_child gateway "$GATEWAY_TAG"
if [ "$COMPOSE_IMAGES" = 1 ]; then
  build_child postgres "$POSTGRES_TAG"
  build_child redis "$REDIS_TAG"
fi

# Images replaced by this run, children first; `docker rmi` refuses while a container or another
# image still uses one, which is fine (it goes with a later run's cleanup or `docker image prune`).
for ((i = ${#OLD_IDS[@]} - 1; i >= 0; i--)); do
  docker rmi "${OLD_IDS[$i]}" >/dev/null 2>&1 || true
done
