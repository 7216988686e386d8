import { eq } from "drizzle-orm";
import type { Tx } from "../../db/client.js";
import { hosts, type HostRow, tasks } from "../../db/schema/index.js";
import { Conflict } from "../../errors.js";
import { START_KINDS } from "../../queue/contracts.js";
import type { ServiceContext } from "../context.js";
import { recordEvent } from "../events.js";
import { findTask } from "./query.js";
import { renderTask, type TaskView } from "./render.js";

/** Kinds whose cancel brings the host to `stopped` / desired `stopped` (docs/architecture.md#tasks, docs/architecture.md#host-status). */
const START_KIND_SET: ReadonlySet<string> = new Set(START_KINDS);
/**
 * Everything else (host.stop, host.delete, host.apply-egress, host.sync-keys, system.*) carries
 * safety or consistency work and is never canceled by a request.
 */
const CANCELABLE_KINDS: ReadonlySet<string> = new Set([...START_KINDS, "egress.test"]);

/**
 * Statuses a worker sets while it runs some task of the host. A pending task being canceled cannot
 * be the one that set them, so another task owns the status: only the desired state changes then.
 */
const WORKER_OWNED_STATUSES: ReadonlySet<HostRow["status"]> = new Set(["creating", "starting", "stopping", "rebuilding"]);

export type CancelOutcome = { status: 200 | 202; task: TaskView };

/**
 * `POST /v1/admin/tasks/{taskID}/cancel` (docs/architecture.md#tasks, docs/api.md#tasks-cancel). The task row is locked first,
 * so a worker's pending → running compare-and-set either happened before (we see `running`) or
 * waits for us and then finds nothing to claim.
 */
export async function cancelTask({ ctx, taskId }: { ctx: ServiceContext; taskId: string }): Promise<CancelOutcome> {
  const outcome = await cancelInTx(ctx, taskId);
  ctx.notifyLive({ kind: "task", id: outcome.task.id });
  // A pending task that ended here may have been the one its host's next task was parked behind.
  if (outcome.status === 200 && outcome.task.host_id) await ctx.wakeHost(outcome.task.host_id);
  return outcome;
}

async function cancelInTx(ctx: ServiceContext, taskId: string): Promise<CancelOutcome> {
  return ctx.db.transaction(async (tx) => {
    const task = await findTask(tx, taskId, { forUpdate: true });
    if (!CANCELABLE_KINDS.has(task.kind)) {
      throw Conflict("task_not_cancelable", `a ${task.kind} task cannot be canceled`);
    }
    if (task.status !== "pending" && task.status !== "running") {
      throw Conflict("task_not_cancelable", `the task has already ended (${task.status})`);
    }
    const host = task.hostId
      ? (await tx.select().from(hosts).where(eq(hosts.id, task.hostId)).for("update"))[0]
      : undefined;
    const now = ctx.clock();
    const who = ctx.actor?.username ?? "system";

    if (task.status === "running") {
      // Cooperative: the worker stops at its next step boundary and ends the task `canceled`.
      if (task.cancelRequested) return { status: 202, task: renderTask(task) };
      const [updated] = await tx.update(tasks).set({ cancelRequested: true }).where(eq(tasks.id, task.id)).returning();
      await recordEvent(tx, {
        type: "task.cancel.requested",
        message: `cancel of ${task.kind} task requested by ${who}`,
        actorId: ctx.actor?.id,
        userId: host?.userId ?? null,
        hostId: task.hostId,
        taskId: task.id,
        metadata: { kind: task.kind },
      });
      return { status: 202, task: renderTask(updated!) };
    }

    const [updated] = await tx
      .update(tasks)
      .set({ status: "canceled", errorCode: "canceled", errorMessage: `canceled by ${who}`, finishedAt: now })
      .where(eq(tasks.id, task.id))
      .returning();
    if (host && START_KIND_SET.has(task.kind)) await stopHostAfterCancel(tx, host, now);
    await recordEvent(tx, {
      type: "task.canceled",
      level: "warn",
      message: `${task.kind} task canceled by ${who}`,
      actorId: ctx.actor?.id,
      userId: host?.userId ?? null,
      hostId: task.hostId,
      taskId: task.id,
      metadata: { kind: task.kind },
    });
    return { status: 200, task: renderTask(updated!) };
  });
}

/**
 * A canceled start-type task leaves the host `stopped` with `desired_state = stopped` (docs/architecture.md#host-status, docs/architecture.md#tasks),
 * so the reconciler does not start it again. A host being deleted keeps `deleting`: its teardown
 * supersedes everything.
 */
async function stopHostAfterCancel(tx: Tx, host: HostRow, now: Date): Promise<void> {
  if (host.status === "deleting") return;
  await tx
    .update(hosts)
    .set({
      desiredState: "stopped",
      ...(WORKER_OWNED_STATUSES.has(host.status) ? {} : { status: "stopped" as const }),
      updatedAt: now,
    })
    .where(eq(hosts.id, host.id));
}
