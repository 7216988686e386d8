import { and, inArray, lt, notInArray } from "drizzle-orm";
import { engines, hosts } from "../../shared/db/schema/index.js";
import { recordEvent } from "../../shared/services/events.js";
import type { WorkerDeps } from "../deps.js";

/**
 * Statuses a dead engine leaves alone: `pending` (its create has not reached the engine; it runs
 * when a worker is back), `deleting` (the delete resumes then) and `unreachable` itself.
 */
const KEPT = ["pending", "deleting", "unreachable"] as const;

/**
 * Dead engines (docs/engines.md#health), cluster-wide, every heartbeat interval: an engine no worker
 * has reached Docker on for ENGINE_DEAD_AFTER_SECONDS has its hosts marked `unreachable`. Nothing
 * is deleted or recreated elsewhere; the engine's own reconciler gives each host its real status
 * back when the engine answers again (worker/schedulers/reconcile.ts).
 *
 * An engine never seen (last_seen_at null) has no hosts that ever ran there, so it is not judged.
 */
export async function runEngineHealth(deps: WorkerDeps): Promise<{ unreachable: number }> {
  const now = deps.clock();
  const deadBefore = new Date(now.getTime() - deps.config.ENGINE_DEAD_AFTER_SECONDS * 1000);
  const dead = await deps.db.select({ id: engines.id, lastSeenAt: engines.lastSeenAt }).from(engines).where(lt(engines.lastSeenAt, deadBefore));
  if (!dead.length) return { unreachable: 0 };
  const marked = await deps.db
    .update(hosts)
    .set({ status: "unreachable", updatedAt: now })
    .where(and(inArray(hosts.engineId, dead.map((e) => e.id)), notInArray(hosts.status, [...KEPT])))
    .returning({ id: hosts.id, shortId: hosts.shortId, userId: hosts.userId, engineId: hosts.engineId });
  for (const h of marked) {
    const engine = dead.find((e) => e.id === h.engineId)!;
    await recordEvent(deps.db, {
      type: "host.unreachable",
      level: "warn",
      message: `host ${h.shortId} is unreachable: engine ${h.engineId} has not answered since ${engine.lastSeenAt!.toISOString()}`,
      userId: h.userId,
      hostId: h.id,
      metadata: { engine_id: h.engineId, last_seen_at: engine.lastSeenAt!.toISOString() },
    });
    deps.notifyLive({ kind: "host", id: h.id });
  }
  if (marked.length) deps.logger.warn({ engines: dead.map((e) => e.id), hosts: marked.length }, "engine unreachable: hosts marked");
  return { unreachable: marked.length };
}

