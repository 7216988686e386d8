import Docker from "dockerode";
import { ne } from "drizzle-orm";
import { engineImages, engines } from "../shared/db/schema/index.js";
import { recordEvent } from "../shared/services/events.js";
import type { WorkerDeps } from "./deps.js";
import { connectionOf } from "./engine.js";

/**
 * Images everywhere without a registry (docs/engines.md#images): when this worker's engine lacks
 * HOST_IMAGE or GATEWAY_IMAGE, it copies the image from another engine that has it — found in
 * `engine_images`, reached the way that engine's own workers reach it (worker/engine.ts) — by
 * streaming `docker save` there into `docker load` here.
 *
 * Checked by content hash: the image id is the sha256 of the image's configuration, which lists
 * the sha256 of every layer (the engine verifies each loaded layer against it). The copy counts
 * only if the id the image has here afterwards is the id the source engine published; otherwise
 * what was loaded is removed and the next source is tried.
 */
export async function importMissingImages(
  deps: Pick<WorkerDeps, "db" | "runtime" | "config" | "secrets" | "logger">,
): Promise<{ imported: { ref: string; from: string; seconds: number }[]; missing: string[] }> {
  const { config, runtime, db, logger } = deps;
  const imported: { ref: string; from: string; seconds: number }[] = [];
  const missing: string[] = [];
  const refs = [
    { ref: config.HOST_IMAGE, pick: (r: typeof engineImages.$inferSelect) => (r.hostImage === config.HOST_IMAGE ? r.hostImageId : null) },
    { ref: config.GATEWAY_IMAGE, pick: (r: typeof engineImages.$inferSelect) => (r.gatewayImage === config.GATEWAY_IMAGE ? r.gatewayImageId : null) },
  ];
  const published = await db.select().from(engineImages).where(ne(engineImages.engineId, config.ENGINE_ID));
  const peers = await db.select().from(engines).where(ne(engines.id, config.ENGINE_ID));
  for (const { ref, pick } of refs) {
    if (await runtime.imageId(ref)) continue;
    let done = false;
    for (const row of published) {
      const want = pick(row);
      const peer = peers.find((p) => p.id === row.engineId);
      if (!want || !peer) continue;
      const started = Date.now();
      try {
        const source = new Docker(connectionOf(peer, deps.secrets));
        const there = await source.getImage(ref).inspect();
        if (there.Id !== want) continue; // that engine has moved on since it published
        await runtime.importImage((await source.getImage(ref).get()) as NodeJS.ReadableStream);
        const here = await runtime.imageId(ref);
        if (here !== want) {
          logger.warn({ ref, from: peer.id, want, got: here }, "imported image does not match its source's id; removed");
          await runtime.deleteImage(ref).catch(() => {});
          continue;
        }
        const seconds = (Date.now() - started) / 1000;
        imported.push({ ref, from: peer.id, seconds });
        await recordEvent(db, {
          type: "engine.image.imported",
          message: `engine ${config.ENGINE_ID} imported ${ref} from engine ${peer.id}`,
          metadata: { engine_id: config.ENGINE_ID, ref, image_id: want, from_engine_id: peer.id, seconds },
        });
        logger.info({ ref, from: peer.id, image_id: want, seconds }, "image imported from another engine");
        done = true;
        break;
      } catch (err) {
        logger.warn({ ref, from: peer.id, err: (err as Error).message }, "could not import the image from this engine; trying the next");
      }
    }
    if (!done) missing.push(ref);
  }
  return { imported, missing };
}
