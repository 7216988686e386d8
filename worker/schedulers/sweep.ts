import { and, eq, inArray, lt, or, sql } from "drizzle-orm";
import { hosts, sshTickets, tasks } from "../../shared/db/schema/index.js";
import { recordEvent } from "../../shared/services/events.js";
import { closeLostSessions } from "../../shared/services/sessions/store.js";
import { isJobName, queueOf } from "../../shared/queue/contracts.js";
import type { WorkerDeps } from "../deps.js";

const TRANSITIONAL = ["creating", "starting", "stopping", "rebuilding"] as const;

/**
 * The safety net of the job pipeline (docs/architecture.md#schedulers): pending tasks whose job is gone,
 * and running ones whose job is gone and whose worker stopped beating, are enqueued again; tasks stuck past TASK_STALE_AFTER_SECONDS fail with `stale_timeout`; expired
 * bootstrap tickets are deleted.
 */
export async function runSweep(deps: WorkerDeps): Promise<{ requeued: number; stale: number; tickets: number; lostSessions: number }> {
  const now = deps.clock();
  const staleBefore = new Date(now.getTime() - deps.config.TASK_STALE_AFTER_SECONDS * 1000);
  let requeued = 0;

  // Pending tasks, and running ones whose worker stopped beating for longer than a lease: a job
  // lost with a Redis that restarted empty, or failed by BullMQ after stalling too often, would
  // otherwise wait for the stale limit (and fail) although a worker could simply run it again.
  const leaseAgo = new Date(now.getTime() - deps.config.WORKER_LEASE_SECONDS * 1000);
  const pending = await deps.db
    .select()
    .from(tasks)
    .where(
      or(
        eq(tasks.status, "pending"),
        and(eq(tasks.status, "running"), sql`coalesce(${tasks.heartbeatAt}, ${tasks.startedAt}, ${tasks.createdAt}) < ${leaseAgo.toISOString()}::timestamptz`),
      ),
    );
  for (const t of pending) {
    if (!isJobName(t.kind)) continue;
    // Past the stale limit it is failed below instead: a pending one by its age, a running one by
    // its heartbeat (a long task that lost its job is still re-queued while it beat recently).
    if (t.status === "pending" && t.createdAt < staleBefore) continue;
    if (t.status === "running" && (t.heartbeatAt ?? t.startedAt ?? t.createdAt) < staleBefore) continue;
    const queue = deps.queues.get(queueOf(t.kind, t.engineId));
    const job = await queue.getJob(t.id);
    // A job that exists (waiting, delayed, active) is fine; a missing or finished one is re-added.
    const state = job ? await job.getState() : "missing";
    if (state === "missing" || state === "completed" || state === "failed" || state === "unknown") {
      if (job) await job.remove().catch(() => {});
      await deps.enqueue(t);
      requeued++;
    }
  }

  const stuck = await deps.db
    .update(tasks)
    .set({ status: "failed", errorCode: "stale_timeout", errorMessage: "no progress within the stale limit", finishedAt: now })
    .where(
      or(
        and(eq(tasks.status, "pending"), lt(tasks.createdAt, staleBefore)),
        and(eq(tasks.status, "running"), sql`coalesce(${tasks.heartbeatAt}, ${tasks.startedAt}, ${tasks.createdAt}) < ${staleBefore.toISOString()}::timestamptz`),
      ),
    )
    .returning();
  for (const t of stuck) {
    await recordEvent(deps.db, {
      type: "task.failed",
      level: "error",
      message: `task ${t.kind} failed: stale_timeout`,
      hostId: t.hostId,
      taskId: t.id,
      metadata: { kind: t.kind, error_code: "stale_timeout" },
    });
    if (t.hostId) {
      // A host left in a transitional status by the dead task becomes `failed`. So does a host
      // still `pending` whose create went stale (never picked up, e.g. no worker ran): a failed
      // lifecycle task means `failed` (docs/architecture.md#host-status), and the reconciler skips `pending` hosts, so left
      // `pending` it would never be created nor repaired.
      const from = t.kind === "host.create" ? (["pending", ...TRANSITIONAL] as const) : TRANSITIONAL;
      await deps.db
        .update(hosts)
        .set({ status: "failed", updatedAt: now })
        .where(and(eq(hosts.id, t.hostId), inArray(hosts.status, [...from])));
    }
  }

  for (const t of stuck) deps.notifyLive({ kind: "task", id: t.id });
  // Tasks parked behind a stale one are woken now rather than at their safety-net recheck.
  for (const hostId of new Set(stuck.flatMap((t) => (t.hostId ? [t.hostId] : [])))) await deps.wakeHost(hostId);

  const tickets = await deps.db.delete(sshTickets).where(lt(sshTickets.expiresAt, now)).returning({ id: sshTickets.id });

  // Session rows whose proxy process died: nobody refreshes their liveness key (docs/sessions.md#lost).
  const lostSessions = await closeLostSessions(deps.db, deps.redis, deps.config.REDIS_PREFIX, now);

  return { requeued, stale: stuck.length, tickets: tickets.length, lostSessions };
}
