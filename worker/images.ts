import { and, eq, inArray, isNull, ne, or } from "drizzle-orm";
import { engineImages, hosts } from "../shared/db/schema/index.js";
import type { WorkerDeps } from "./deps.js";
import { LABEL_HOST_ID, LABEL_ROLE } from "./hosts/names.js";

/**
 * Outdated images (README "Upgrading"). The worker is the only process that talks to Docker, so
 * it is the one that knows which image ids HOST_IMAGE and GATEWAY_IMAGE name now: it writes them
 * to `engine_images` (one row per engine) and records on each host the ids its containers were
 * created from. The API compares the two; nothing else needs the engine.
 */

/** Resolve this engine's image references and store them when they changed. Returns the ids. */
export async function publishEngineImages(deps: WorkerDeps): Promise<{ hostImageId: string; gatewayImageId: string } | null> {
  const { config, runtime, db } = deps;
  const [hostImageId, gatewayImageId] = [await runtime.imageId(config.HOST_IMAGE), await runtime.imageId(config.GATEWAY_IMAGE)];
  // An image missing from the engine says nothing about which one is current: keep the last
  // known row (tasks fail `image_missing` on their own).
  if (!hostImageId || !gatewayImageId) return null;
  const row = {
    hostImage: config.HOST_IMAGE,
    hostImageId,
    gatewayImage: config.GATEWAY_IMAGE,
    gatewayImageId,
    updatedAt: deps.clock(),
  };
  await db
    .insert(engineImages)
    .values({ engineId: config.ENGINE_ID, ...row })
    .onConflictDoUpdate({
      target: engineImages.engineId,
      set: row,
      // Only a change rewrites the row (every replica of the engine publishes the same ids).
      setWhere: or(
        ne(engineImages.hostImageId, hostImageId),
        ne(engineImages.gatewayImageId, gatewayImageId),
        ne(engineImages.hostImage, config.HOST_IMAGE),
        ne(engineImages.gatewayImage, config.GATEWAY_IMAGE),
      ),
    });
  return { hostImageId, gatewayImageId };
}

/**
 * Hosts of this engine whose image ids are not known yet (created before the columns existed)
 * get them from their existing containers, so an upgrade flags them instead of leaving them
 * unknown. Hosts brought up since record theirs when they reach `running` (host-flows.ts).
 */
export async function recordObservedImages(deps: WorkerDeps): Promise<number> {
  const { db, runtime, config } = deps;
  const unknown = await db
    .select({ id: hosts.id })
    .from(hosts)
    // Only hosts that have containers to look at: a host that never came up stays unknown
    // without listing the engine's containers every interval.
    .where(and(eq(hosts.engineId, config.ENGINE_ID), or(isNull(hosts.imageId), isNull(hosts.gatewayImageId)), inArray(hosts.status, ["running", "stopped"])));
  if (unknown.length === 0) return 0;
  const wanted = new Set(unknown.map((h) => h.id));
  const seen = new Map<string, { host?: string; gateway?: string }>();
  for (const c of await runtime.listManagedContainers()) {
    const hostId = c.labels[LABEL_HOST_ID];
    if (!hostId || !wanted.has(hostId) || !c.imageId) continue;
    const o = seen.get(hostId) ?? {};
    if (c.labels[LABEL_ROLE] === "host") o.host = c.imageId;
    if (c.labels[LABEL_ROLE] === "gateway") o.gateway = c.imageId;
    seen.set(hostId, o);
  }
  let n = 0;
  for (const [hostId, o] of seen) {
    if (!o.host || !o.gateway) continue;
    // Only still-unknown rows: a task that brought the host up meanwhile wrote the truth.
    const rows = await db
      .update(hosts)
      .set({ imageId: o.host, gatewayImageId: o.gateway })
      .where(and(eq(hosts.id, hostId), isNull(hosts.imageId)))
      .returning({ id: hosts.id });
    n += rows.length;
  }
  return n;
}

/** The ids of the containers a host runs now (after a start or rebuild brought it up). */
export async function containerImageIds(
  deps: WorkerDeps,
  names: { host: string; gateway: string },
): Promise<{ imageId?: string; gatewayImageId?: string }> {
  const [h, g] = await Promise.all([deps.runtime.inspectContainer(names.host), deps.runtime.inspectContainer(names.gateway)]);
  // Both or neither: a half-known pair would compare one image and ignore the other.
  return h?.imageId && g?.imageId ? { imageId: h.imageId, gatewayImageId: g.imageId } : {};
}

/**
 * Publish at start and then every interval: images rebuilt while the worker runs (npm run setup)
 * are noticed without a restart. Failures (Docker or Postgres away) are logged and retried.
 */
export function startImageWatch(deps: WorkerDeps, intervalSeconds: number): { stop: () => Promise<void> } {
  let running: Promise<void> = Promise.resolve();
  const tick = () => {
    running = (async () => {
      try {
        await publishEngineImages(deps);
        const filled = await recordObservedImages(deps);
        if (filled) deps.logger.info({ hosts: filled }, "recorded the image ids of existing hosts");
      } catch (err) {
        deps.logger.warn({ err: (err as Error).message }, "could not publish the engine's image ids");
      }
    })();
  };
  tick();
  const timer = setInterval(tick, intervalSeconds * 1000);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
