# cloud-cli-proxy control plane: one image for api, worker and sshd (the command picks the role).
#
# Build it with deploy/images/build-app.sh, not directly: there is no registry and npm is not
# in the base image, so that script builds on the host and stages the result in the build
# context first (deploy/images/node, deploy/images/app/{package.json,dist,node_modules,drizzle}).
# The base image is the local Debian bookworm image built by deploy/images/build.sh.
FROM cloud-cli-proxy/base:bookworm

RUN useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin cloudproxy

# The host's Node.js binary (an official build links only glibc and libstdc++).
COPY deploy/images/node /usr/local/bin/node

WORKDIR /app
# package.json is needed at run time: "type": "module", and it marks the package root where
# drizzle/migrations is looked up (shared/paths.ts).
COPY deploy/images/app/package.json ./package.json
COPY deploy/images/app/node_modules ./node_modules
COPY deploy/images/app/drizzle/migrations ./drizzle/migrations
COPY deploy/images/app/api/scripts ./api/scripts
COPY deploy/images/app/dist ./dist

ENV NODE_ENV=production
USER cloudproxy
ENTRYPOINT ["/usr/local/bin/node", "/app/dist/main.js"]
CMD ["api,worker,sshd"]
