import { and, eq, inArray } from "drizzle-orm";
import { hosts, tasks, users, type TaskRow } from "../../shared/db/schema/index.js";
import { redisKey } from "../../shared/redis.js";
import { recordEvent } from "../../shared/services/events.js";
import { countSessionConnections, effectiveIdlePolicy } from "../../shared/services/hosts/idle-policy.js";
import { insertTask } from "../../shared/services/tasks/create.js";
import type { WorkerDeps } from "../deps.js";
import { gatewayName, hostContainerName } from "../hosts/names.js";

/** Hosts observed at once per scan: each costs one exec and one stats call on the engine. */
const SCAN_CONCURRENCY = 4;

/** What one scan saw of one host: null fields could not be read (and never count as idle). */
export interface IdleObservation {
  hostId: string;
  sessions: number | null;
  cpuPercent: number | null;
  memoryBytes: number | null;
}

export interface IdleScanResult {
  scanned: number;
  active: number;
  idle_stopped: number;
}

/**
 * The idle scan of one engine (docs/idle.md#scan), a per-engine job scheduler like the reconciler:
 * for each running host of this engine with an effective idle policy, count the SSH and desktop
 * connections in its network namespace and its CPU use since the previous scan. Any activity sets
 * `last_active_at` to now; a host with no session and CPU under its threshold since
 * `last_active_at` for at least its policy's minutes gets `desired_state = stopped`,
 * `idle_stopped_at`, a `host.stop` task (`system:idle`) and a `host.idle_stopped` event. A reading
 * that fails (an exec refused, no previous CPU sample) decides nothing either way.
 */
export async function runIdleScan(deps: WorkerDeps, run: { requestId?: string } = {}): Promise<IdleScanResult> {
  const { db, config } = deps;
  const rows = await db
    .select({ host: hosts, owner: { idleStopMinutes: users.idleStopMinutes, idleCpuPercent: users.idleCpuPercent } })
    .from(hosts)
    .innerJoin(users, eq(users.id, hosts.userId))
    .where(and(eq(hosts.engineId, config.ENGINE_ID), eq(hosts.status, "running"), eq(hosts.desiredState, "running"), eq(hosts.alwaysOn, false)));
  const global = { stopMinutes: config.IDLE_STOP_MINUTES, cpuPercent: config.IDLE_CPU_PERCENT };
  const candidates = rows
    .map((r) => ({ host: r.host, policy: effectiveIdlePolicy(r.host, r.owner, global) }))
    .filter((c) => c.policy.stopMinutes > 0);
  const result: IdleScanResult = { scanned: 0, active: 0, idle_stopped: 0 };
  if (!candidates.length) return result;
  // A host with work queued or running is not idle in any sense that matters: leave it alone.
  const live = await db
    .select({ hostId: tasks.hostId })
    .from(tasks)
    .where(and(inArray(tasks.status, ["pending", "running"]), inArray(tasks.hostId, candidates.map((c) => c.host.id))));
  const busy = new Set(live.map((t) => t.hostId));
  const now = deps.clock();
  const activeIds: string[] = [];
  await eachLimited(
    candidates.filter((c) => !busy.has(c.host.id)),
    SCAN_CONCURRENCY,
    async ({ host, policy }) => {
      result.scanned++;
      const seen = await observeHost(deps, host.id, Number(host.cpuLimit));
      const active = (seen.sessions ?? 0) > 0 || (seen.cpuPercent !== null && seen.cpuPercent >= policy.cpuPercent);
      if (active || !host.lastActiveAt) {
        // Activity (or a host seen for the first time): the idle window starts again from now.
        activeIds.push(host.id);
        if (active) result.active++;
        return;
      }
      if (seen.sessions === null || seen.cpuPercent === null) return;
      const idleMs = now.getTime() - host.lastActiveAt.getTime();
      if (idleMs < policy.stopMinutes * 60_000) return;
      const task = await stopIdleHost(deps, host.id, host.lastActiveAt, { now, requestId: run.requestId, seen, policy, idleMs });
      if (task) {
        result.idle_stopped++;
        await deps.enqueue(task);
      }
    },
  );
  if (activeIds.length) await db.update(hosts).set({ lastActiveAt: now }).where(inArray(hosts.id, activeIds));
  return result;
}

/** Sessions and CPU of one running host (docs/idle.md#scan). */
export async function observeHost(deps: WorkerDeps, hostId: string, cpuLimit: number): Promise<IdleObservation> {
  const seen: IdleObservation = { hostId, sessions: null, cpuPercent: null, memoryBytes: null };
  try {
    // The gateway owns the namespace the host lives in, and is ours (the host's files are the
    // tenant's): its /proc/net lists the host's sockets too. tcp6 may be absent (IPv6 off); cat
    // still prints tcp and exits 1, which is fine.
    const r = await deps.runtime.exec(gatewayName(hostId), ["cat", "/proc/net/tcp", "/proc/net/tcp6"], { timeoutMs: 10_000, maxOutputBytes: 4 * 1024 * 1024 });
    seen.sessions = countSessionConnections(r.stdout);
  } catch (err) {
    deps.logger.warn({ host_id: hostId, err: (err as Error).message }, "idle scan: could not read the host's connections");
  }
  try {
    const stats = await deps.runtime.containerStats(hostContainerName(hostId));
    if (stats) {
      seen.memoryBytes = stats.memoryBytes;
      seen.cpuPercent = await cpuSinceLastScan(deps, hostId, stats, cpuLimit);
    }
  } catch (err) {
    deps.logger.warn({ host_id: hostId, err: (err as Error).message }, "idle scan: could not read the host's CPU");
  }
  return seen;
}

/**
 * Average CPU since the previous scan's reading, in percent of the host's CPU limit. The reading
 * is cumulative, so this covers the whole interval, not one instant: a build that ran for 30 s
 * between two scans counts. The previous reading lives in Redis (any worker of the engine may run
 * the next scan); without one, or after a container restart reset the counter, there is no figure.
 */
async function cpuSinceLastScan(
  deps: WorkerDeps,
  hostId: string,
  stats: { cpuUsageNs: number; at: Date },
  cpuLimit: number,
): Promise<number | null> {
  const key = redisKey(deps.config.REDIS_PREFIX, "idle-cpu", hostId);
  const prev = await deps.redis.get(key);
  await deps.redis.set(key, JSON.stringify({ ns: stats.cpuUsageNs, at: stats.at.getTime() }), "EX", Math.max(3 * deps.config.IDLE_SCAN_INTERVAL_SECONDS, 600));
  if (!prev) return null;
  let p: { ns: number; at: number };
  try {
    p = JSON.parse(prev) as { ns: number; at: number };
  } catch {
    return null;
  }
  const wallNs = (stats.at.getTime() - p.at) * 1e6;
  const usedNs = stats.cpuUsageNs - p.ns;
  if (wallNs <= 0 || usedNs < 0) return null;
  return Math.round((usedNs / wallNs / Math.max(cpuLimit, 0.01)) * 1000) / 10;
}

/**
 * Stop one idle host: in one transaction with the row locked, re-checked (still running, still
 * wanted running, not always-on, no task, no activity recorded since the scan read it).
 */
async function stopIdleHost(
  deps: WorkerDeps,
  hostId: string,
  lastActiveAt: Date,
  o: { now: Date; requestId?: string; seen: IdleObservation; policy: { stopMinutes: number; cpuPercent: number }; idleMs: number },
): Promise<TaskRow | null> {
  return deps.db.transaction(async (tx) => {
    const [h] = await tx.select().from(hosts).where(eq(hosts.id, hostId)).for("update");
    if (!h || h.status !== "running" || h.desiredState !== "running" || h.alwaysOn) return null;
    if (h.lastActiveAt && h.lastActiveAt.getTime() !== lastActiveAt.getTime()) return null;
    const [queued] = await tx
      .select({ id: tasks.id })
      .from(tasks)
      .where(and(eq(tasks.hostId, hostId), inArray(tasks.status, ["pending", "running"])))
      .limit(1);
    if (queued) return null;
    await tx.update(hosts).set({ desiredState: "stopped", idleStoppedAt: o.now, updatedAt: o.now }).where(eq(hosts.id, hostId));
    const task = await insertTask(tx, { kind: "host.stop", hostId, requestedBy: "system:idle", origin: "system", requestId: o.requestId });
    const idleMinutes = Math.floor(o.idleMs / 60_000);
    await recordEvent(tx, {
      type: "host.idle_stopped",
      message: `host ${h.shortId} stopped after ${idleMinutes} minutes idle`,
      userId: h.userId,
      hostId,
      taskId: task.id,
      metadata: {
        idle_minutes: idleMinutes,
        policy_minutes: o.policy.stopMinutes,
        cpu_percent: o.seen.cpuPercent,
        cpu_threshold_percent: o.policy.cpuPercent,
        // What the stop frees: the memory the host used, and its limits.
        memory_bytes: o.seen.memoryBytes,
        memory_limit_mb: h.memoryLimitMb,
        cpu_limit: Number(h.cpuLimit),
      },
    });
    return task;
  });
}

async function eachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
