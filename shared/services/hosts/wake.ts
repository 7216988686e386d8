import { and, desc, eq, inArray } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.js";
import { hosts, tasks, users, type TaskRow } from "../../db/schema/index.js";
import { bootstrapStage, STAGE_TEXT } from "../access/bootstrap.js";
import { recordEvent } from "../events.js";
import { insertTask } from "../tasks/create.js";
import { isExpired } from "../users/render.js";

/** What woke a host (docs/idle.md#wake): the `via` of `host.woken`. */
export type WakeVia = "ssh" | "script" | "desktop";

export type WakeRequest =
  /** Nothing to wait for. */
  | { state: "running" }
  /** A start is under way: this task (created now, or joined). */
  | { state: "waking"; taskId: string; created: boolean }
  /** Not wakeable: stopped by a person, failed, deleting, or its owner may not use it. */
  | { state: "refused" };

/**
 * Wake a host on arrival (docs/idle.md#wake). In one transaction with the host row locked:
 *
 * - a running host needs nothing;
 * - a host already on its way up (desired `running`, a start-type task pending or running) is
 *   joined: whoever arrives meanwhile waits for the same task;
 * - a host stopped **for idleness** (`idle_stopped_at` set, desired `stopped`) gets desired
 *   `running` and a `host.start` task, `requested_by: system:wake`, its payload naming `via` (the
 *   worker records `host.woken` from it when the host runs, with the time it took);
 * - anything else is refused: a host an admin or the system stopped (user disabled, expired)
 *   stays stopped until someone starts it on purpose.
 *
 * The caller has proven a credential for the host; the owner is re-checked here (active, not
 * expired, not deleted). Returns the task to enqueue after commit when one was created.
 */
export async function requestWake(
  db: DbOrTx,
  hostId: string,
  o: { via: WakeVia; now: Date; requestId?: string | null },
): Promise<{ result: WakeRequest; task: TaskRow | null }> {
  return db.transaction(async (tx) => {
    const [row] = await tx
      .select({ host: hosts, owner: users })
      .from(hosts)
      .innerJoin(users, eq(users.id, hosts.userId))
      .where(eq(hosts.id, hostId))
      .for("update", { of: hosts });
    if (!row) return { result: { state: "refused" }, task: null };
    const { host, owner } = row;
    if (host.status === "deleting" || owner.deletedAt || owner.status !== "active" || isExpired(owner, o.now)) {
      return { result: { state: "refused" }, task: null };
    }
    if (host.status === "running") return { result: { state: "running" }, task: null };
    // Only a start of a stopped host is joined: a host being created, rebuilt or repaired is not
    // "waking" (those keep answering host_not_running).
    if (host.desiredState === "running" && (host.status === "stopped" || host.status === "starting")) {
      const [live] = await tx
        .select({ id: tasks.id })
        .from(tasks)
        .where(
          and(
            eq(tasks.hostId, host.id),
            inArray(tasks.kind, ["host.start", "host.ensure-running"]),
            inArray(tasks.status, ["pending", "running"]),
            eq(tasks.cancelRequested, false),
          ),
        )
        .orderBy(desc(tasks.createdAt))
        .limit(1);
      return { result: live ? { state: "waking", taskId: live.id, created: false } : { state: "refused" }, task: null };
    }
    if (host.desiredState === "running") return { result: { state: "refused" }, task: null };
    if (!host.idleStoppedAt || host.desiredState !== "stopped") return { result: { state: "refused" }, task: null };
    await tx
      .update(hosts)
      .set({ desiredState: "running", updatedAt: o.now, repairAttempts: 0, repairNotBefore: null })
      .where(eq(hosts.id, host.id));
    const task = await insertTask(tx, {
      kind: "host.start",
      hostId: host.id,
      requestedBy: "system:wake",
      origin: "system",
      payload: { woken_by: o.via },
      requestId: o.requestId ?? null,
    });
    await recordEvent(tx, {
      type: "host.wake.requested",
      message: `host ${host.shortId} waking (${o.via})`,
      userId: host.userId,
      hostId: host.id,
      taskId: task.id,
      metadata: { via: o.via, idle_stopped_at: host.idleStoppedAt.toISOString() },
    });
    return { result: { state: "waking", taskId: task.id, created: true }, task };
  });
}

export interface WakeProgress {
  /** `running`: the host is up; `failed`: the start failed or was canceled; `waking`: not yet. */
  state: "running" | "failed" | "waking";
  percent: number;
  text: string;
  errorCode: string | null;
  /** When the start task was created: how long the wake has been going on. */
  since: Date | null;
}

/**
 * Where a wake stands: the start task's stage and percentage as the scripts show them
 * (shared/services/access/bootstrap.ts bootstrapStage), and done only once the host row says
 * `running` (the task ends after the row is written).
 */
export async function wakeProgress(db: DbOrTx, hostId: string, taskId: string): Promise<WakeProgress> {
  const [t] = await db
    .select({ status: tasks.status, steps: tasks.steps, progressPercent: tasks.progressPercent, errorCode: tasks.errorCode, createdAt: tasks.createdAt })
    .from(tasks)
    .where(eq(tasks.id, taskId));
  const [h] = await db.select({ status: hosts.status }).from(hosts).where(eq(hosts.id, hostId));
  if (!t || !h) return { state: "failed", percent: 0, text: STAGE_TEXT.failed, errorCode: "host_not_found", since: null };
  const since = t.createdAt;
  const { stage_code, progress_percent } = bootstrapStage(t);
  if (t.status === "succeeded" && h.status === "running") return { state: "running", percent: 100, text: STAGE_TEXT.ssh_ready, errorCode: null, since };
  if (t.status === "failed" || t.status === "canceled" || (t.status === "succeeded" && h.status !== "running")) {
    return { state: "failed", percent: progress_percent, text: STAGE_TEXT.failed, errorCode: t.errorCode ?? "start_failed", since };
  }
  return { state: "waking", percent: progress_percent, text: STAGE_TEXT[stage_code], errorCode: null, since };
}

/**
 * Wait for a wake, bounded (WAKE_TIMEOUT_SECONDS): polls the task and host rows every `pollMs`
 * and reports each change of stage or percentage. Resolves with the last progress, `timeout`
 * when the deadline passed first, or `aborted` when `signal` fired.
 */
export async function waitForWake(
  db: DbOrTx,
  hostId: string,
  taskId: string,
  o: { timeoutMs: number; pollMs?: number; onProgress?: (p: WakeProgress) => void; signal?: AbortSignal },
): Promise<WakeProgress | "timeout" | "aborted"> {
  const deadline = Date.now() + o.timeoutMs;
  let last = "";
  for (;;) {
    if (o.signal?.aborted) return "aborted";
    const p = await wakeProgress(db, hostId, taskId);
    const key = `${p.state}:${p.percent}:${p.text}`;
    if (key !== last) {
      last = key;
      o.onProgress?.(p);
    }
    if (p.state !== "waking") return p;
    if (Date.now() >= deadline) return "timeout";
    await new Promise((r) => setTimeout(r, Math.min(o.pollMs ?? 250, Math.max(1, deadline - Date.now()))));
  }
}
