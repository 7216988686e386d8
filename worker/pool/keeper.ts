import { eq } from "drizzle-orm";
import { engines, hostPool, type HostPoolRow } from "../../shared/db/schema/index.js";
import { HOST_SHAPE_DEFAULTS } from "../../shared/services/hosts/schemas.js";
import type { WorkerDeps } from "../deps.js";
import { currentImageIds, removeMember, warmMember } from "./members.js";

/**
 * Keeps the warm pool at HOST_POOL_SIZE ready members (docs/architecture.md#warm-pool). One unit of
 * work per cycle — remove one stale member, or warm one — under an engine-wide Redis lock, so across
 * every worker of the engine at most one member is warming at a time (a bring-up is CPU-heavy on a
 * small machine and the creates it would compete with matter more). A cycle that did something is
 * followed by the next at once; an idle one waits RECONCILE_INTERVAL_SECONDS or a kick (a claim);
 * a failed one backs off 2 s, 4 s … up to 5 min.
 */

export interface PoolKeeper {
  /** Look at the pool now (after a claim, or from a test). A back-off in progress is kept. */
  kick(): void;
  stop(): Promise<void>;
}

const MAX_BACKOFF_MS = 5 * 60_000;
const backoffMs = (failures: number) => Math.min(2000 * 2 ** (failures - 1), MAX_BACKOFF_MS);

/** Why a member is no longer what a create should get, or null while it still is. */
export function staleReason(deps: WorkerDeps, m: HostPoolRow, images: { imageId: string; gatewayImageId: string } | null): string | null {
  if (m.state === "draining") return "draining";
  // Under the pool lock nobody else is warming: a `warming` row is what a killed worker left.
  if (m.state === "warming") return "abandoned while warming";
  if (m.state !== "ready") return null;
  if (images && (m.imageId !== images.imageId || m.gatewayImageId !== images.gatewayImageId)) return "image changed";
  if (m.homeDiskMb !== deps.config.HOST_DISK_LIMIT_MB) return "HOST_DISK_LIMIT_MB changed";
  const d = HOST_SHAPE_DEFAULTS;
  if (m.memoryLimitMb !== d.memoryLimitMb || Number(m.cpuLimit) !== d.cpuLimit || m.pidsLimit !== d.pidsLimit || m.timezone !== d.timezone) {
    return "shape changed";
  }
  return null;
}

/** One unit of work; true when it did something (the next cycle then follows at once). */
export async function poolCycle(deps: WorkerDeps): Promise<boolean> {
  // A cordoned or draining engine takes no placements, so it keeps no members either: its pool is
  // emptied like a lowered HOST_POOL_SIZE (docs/engines.md#placement).
  const [engine] = await deps.db.select({ state: engines.state }).from(engines).where(eq(engines.id, deps.config.ENGINE_ID));
  const size = engine?.state === "active" ? deps.config.HOST_POOL_SIZE : 0;
  const peek = await deps.db.select({ state: hostPool.state }).from(hostPool).where(eq(hostPool.engineId, deps.config.ENGINE_ID));
  // Off and empty (every test harness): no lock, no engine call.
  if (size === 0 && peek.every((r) => r.state === "claimed")) return false;
  const lock = await deps.locks.acquire(`pool:${deps.config.ENGINE_ID}`);
  if (!lock) return false;
  const keepAlive = setInterval(() => void lock.extend().catch(() => {}), 10_000);
  try {
    const rows = await deps.db.select().from(hostPool).where(eq(hostPool.engineId, deps.config.ENGINE_ID));
    const images = await currentImageIds(deps);
    for (const m of rows) {
      const why = staleReason(deps, m, images);
      if (!why) continue;
      if (await removeMember(deps, m.id)) deps.logger.info({ member: m.id, reason: why }, "pool member removed");
      return true;
    }
    const ready = rows.filter((m) => m.state === "ready").sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
    if (ready.length > size) {
      const extra = ready[ready.length - 1]!;
      if (await removeMember(deps, extra.id)) deps.logger.info({ member: extra.id, reason: "HOST_POOL_SIZE lowered" }, "pool member removed");
      return true;
    }
    if (ready.length < size && images) {
      const started = Date.now();
      const id = await warmMember(deps);
      deps.logger.info({ member: id, duration_ms: Date.now() - started }, "pool member ready");
      return true;
    }
    return false;
  } finally {
    clearInterval(keepAlive);
    await lock.release().catch(() => {});
  }
}

export function startPoolKeeper(deps: WorkerDeps): PoolKeeper {
  let stopped = false;
  let kicked = false;
  let wake: (() => void) | null = null;
  let failures = 0;
  const sleep = (ms: number, interruptible: boolean) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      t.unref();
      function done() {
        clearTimeout(t);
        wake = null;
        resolve();
      }
      wake = () => (interruptible || stopped ? done() : undefined);
    });
  const loop = (async () => {
    while (!stopped) {
      kicked = false;
      let worked = false;
      try {
        worked = await poolCycle(deps);
        failures = 0;
      } catch (err) {
        failures++;
        deps.logger.warn({ err, failures, retry_ms: backoffMs(failures) }, "warm pool: could not keep the pool");
      }
      if (stopped) break;
      if (failures > 0) await sleep(backoffMs(failures), false);
      else if (!worked && !kicked) await sleep(deps.config.RECONCILE_INTERVAL_SECONDS * 1000, true);
    }
  })();
  return {
    kick() {
      kicked = true;
      wake?.();
    },
    async stop() {
      stopped = true;
      wake?.();
      await loop;
    },
  };
}
