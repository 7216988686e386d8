#!/usr/bin/env bash
# Builds the control-plane image cloud-cli-proxy/app:latest (deploy/images/app.Dockerfile)
# without any registry: compiles on the host, stages the production files and the host's Node
# binary in the build context, then runs `docker build`. Needs the local base image
# cloud-cli-proxy/base:bookworm (deploy/images/build.sh).
#
#   deploy/images/build-app.sh [--force] [extra docker build arguments]
#
# The image carries the label cloud-cli-proxy.content-hash=<sha256 over the sources that go into
# it (tracked and untracked, tests left out), the lock file, the Node binary, the base image and
# the extra arguments>; when the tag already carries that hash nothing is rebuilt (--force does).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

say() { printf 'build-app: %s\n' "$*"; }
die() { printf 'build-app: error: %s\n' "$*" >&2; exit 1; }

BASE_IMAGE=cloud-cli-proxy/base:bookworm
IMAGE=cloud-cli-proxy/app:latest
STAGE=deploy/images/app
HASH_LABEL=cloud-cli-proxy.content-hash

FORCE=0
if [ "${1-}" = --force ]; then
  FORCE=1
  shift
fi

command -v docker >/dev/null 2>&1 || die "docker not found"
docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 ||
  die "base image $BASE_IMAGE is missing: build it first (deploy/images/build.sh)"

node_bin=$(readlink -f "$(command -v node)") || die "node not found"
# The engines range of package.json (^20.19.0 || >=22.12.0), as deploy/scripts/setup.sh checks it.
node -e '
  const [maj, min] = process.versions.node.split(".").map(Number);
  process.exit((maj === 20 && min >= 19) || (maj === 22 && min >= 12) || maj > 22 ? 0 : 1);
' || die "Node.js 20.19+ or 22.12+ is needed, found $(node --version)"
# Debian's own nodejs package links libnode/libuv, which the base image does not have.
if ldd "$node_bin" | grep -qE 'libnode|libuv|not found'; then
  die "$node_bin is not a self-contained Node build (see ldd); install an official Node.js build"
fi

# What goes into the image: the compiled sources (tsconfig.json's include, the web UI under api/),
# the migrations and served scripts, the lock file, this script and the Dockerfile.
content_hash() {
  {
    printf 'node=%s\nbase=%s\nargs=%s\n' "$(sha256sum <"$node_bin" | cut -d' ' -f1)" \
      "$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")" "$*"
    git ls-files -z -co --exclude-standard -- main.ts cli checkd api worker sshd shared drizzle \
      package.json package-lock.json tsconfig.json deploy/images/app.Dockerfile \
      deploy/images/app.Dockerfile.dockerignore deploy/images/build-app.sh |
      tr '\0' '\n' | grep -Ev '(\.test\.ts$|^shared/test/)' | LC_ALL=C sort |
      while IFS= read -r f; do if [ -f "$f" ]; then printf '%s\0' "$f"; fi; done | xargs -0 -r sha256sum
  } | sha256sum | cut -d' ' -f1
}
HASH=$(content_hash "$@")
if [ "$FORCE" = 0 ] &&
  [ "$(docker image inspect -f "{{ index .Config.Labels \"$HASH_LABEL\" }}" "$IMAGE" 2>/dev/null || true)" = "$HASH" ]; then
  say "$IMAGE up to date (content-hash ${HASH:0:12})"
  exit 0
fi

[ -d node_modules ] || npm ci --no-audit --no-fund --include=dev

rm -rf "$STAGE"
mkdir -p "$STAGE/drizzle"
# A clean, non-incremental build straight into the stage, so that no output of a deleted
# source file (which may linger in ./dist) reaches the image.
say "compiling into $STAGE/dist"
./node_modules/.bin/tsc -p tsconfig.json --outDir "$STAGE/dist" --incremental false
say "building the web UI into $STAGE/dist/ui"
./node_modules/.bin/vite build --config api/ui/vite.config.ts --outDir "$PWD/$STAGE/dist/ui" --logLevel warn

say "staging production dependencies and migrations"
cp package.json package-lock.json "$STAGE/"
cp -a drizzle/migrations "$STAGE/drizzle/migrations"
# The served bootstrap/entry scripts are read at run time from the package root.
mkdir -p "$STAGE/api"
cp -a api/scripts "$STAGE/api/scripts"
(cd "$STAGE" && npm ci --omit=dev --no-audit --no-fund)
install -m 0755 "$node_bin" deploy/images/node

say "docker build $IMAGE"
docker build -f deploy/images/app.Dockerfile --label "$HASH_LABEL=$HASH" -t "$IMAGE" "$@" .
say "done: $IMAGE"
