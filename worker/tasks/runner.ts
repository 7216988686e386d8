import { DelayedError, type Job, UnrecoverableError } from "bullmq";
import { and, eq, inArray, ne, sql } from "drizzle-orm";
import { SecretUnreadableError, UnknownKeyVersionError } from "../../shared/crypto/secrets.js";
import { hosts, tasks, type TaskRow, type TaskStep } from "../../shared/db/schema/index.js";
import { isInfrastructureError } from "../../shared/infra-errors.js";
import { withLogContext } from "../../shared/log-context.js";
import type { Logger } from "../../shared/logger.js";
import { recordEvent } from "../../shared/services/events.js";
import type { WorkerDeps } from "../deps.js";
import type { TaskOutcome } from "../metrics.js";
import { promoteJob } from "../../shared/queue/wake.js";
import { ContainerOperationError, EngineUnavailableError } from "../runtime/runtime.js";
import { TaskCanceled, TaskError } from "./task-error.js";

export const TASK_HEARTBEAT_MS = 15_000;
/**
 * How long a job waits before trying again when no older task holds its host but the host lock is
 * still taken (the task ahead released it a moment later than it ended). Never a failure.
 */
export const LOCK_RETRY_DELAY_MS = 250;
/** How often a task whose engine does not answer looks again (it waits, it does not fail). */
export const ENGINE_WAIT_MS = 5_000;
/** How long the engine gets to answer that check (as the heartbeat's ping). */
const ENGINE_PING_MS = 2_000;

export interface TaskContext {
  deps: WorkerDeps;
  task: TaskRow;
  log: Logger;
  /** Run one named step: records start, duration and outcome; checks for a cancel first. */
  step(name: string, fn: () => Promise<void | "skipped">): Promise<void>;
  /** Mark steps as skipped without running them. */
  skip(...names: string[]): Promise<void>;
  /** Set the task's `result` (stored with the terminal state). */
  setResult(result: unknown): void;
}

export interface TaskProcessor {
  /** The step names this task will go through, in order (shown as `pending` up front). */
  plan(task: TaskRow): string[];
  run(ctx: TaskContext): Promise<void>;
  /** On a permanent failure, before the task is recorded `failed` (e.g. stop containers, host `failed`). */
  onFailure?(ctx: TaskContext, err: TaskError): Promise<void>;
  /** On a cooperative cancel, before the task is recorded `canceled` (e.g. stop containers, host `stopped`). */
  onCanceled?(ctx: TaskContext): Promise<void>;
}

/**
 * Independent steps run at once (ctx.step is safe to call concurrently): waits for all of them,
 * so nothing is still running when a failure handler starts, then rethrows the first failure in
 * argument order (a cancel before anything else).
 */
export async function concurrently(...work: Promise<unknown>[]): Promise<void> {
  const settled = await Promise.allSettled(work);
  const failed = settled.filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => r.reason as unknown);
  const first = failed.find((e) => e instanceof TaskCanceled) ?? failed[0];
  if (failed.length) throw first;
}

/** Map anything thrown by a step to a task error code (docs/api.md#task-errors). */
export function toTaskError(err: unknown): TaskError {
  if (err instanceof TaskError) return err;
  if (err instanceof EngineUnavailableError) return new TaskError("docker_unavailable", "the Docker engine did not answer");
  if (err instanceof ContainerOperationError) return new TaskError("container_start_failed", err.message.slice(0, 500));
  // The messages name the table, column and row (or the key version), never the value.
  if (err instanceof SecretUnreadableError || err instanceof UnknownKeyVersionError) return new TaskError("secret_unreadable", err.message);
  return new TaskError("internal_error", "unexpected error (see the worker logs)");
}

const terminal = (s: string) => s === "succeeded" || s === "failed" || s === "canceled";

async function delayJob(job: Job, token: string | undefined, ms: number): Promise<never> {
  await job.moveToDelayed(Date.now() + ms, token);
  throw new DelayedError();
}

/**
 * Execute the task behind a BullMQ job (docs/architecture.md#tasks): per-host lock and creation order, CAS
 * claim, steps with progress, heartbeat, retries for transient errors, CAS terminal update.
 * Postgres is the truth; the job is only the delivery.
 */
export async function runTaskJob(
  deps: WorkerDeps,
  processor: TaskProcessor,
  job: Job<{ taskId: string }>,
  token: string | undefined,
): Promise<void> {
  const { db } = deps;
  const taskId = job.data.taskId;
  const [task] = await db.select().from(tasks).where(eq(tasks.id, taskId));
  if (!task || terminal(task.status)) return; // nothing to do: a duplicate or a superseded task
  // A task re-routed to another engine after its job was queued here (a host move switched the
  // host's engine, worker/processors/host-move.ts): hand it to that engine's queue and let go.
  if (task.engineId && task.engineId !== deps.config.ENGINE_ID) {
    await deps.enqueue(task);
    return;
  }
  // Every line logged while the task is processed — by the flows, the runtime, the queue helpers,
  // through whichever logger — carries the task and the request that asked for it
  // (shared/log-context.ts; README "Observability").
  return withLogContext(
    { request_id: task.requestId, task_id: task.id, kind: task.kind, host_id: task.hostId },
    () => processTask(deps, processor, job, token, task),
  );
}

async function processTask(
  deps: WorkerDeps,
  processor: TaskProcessor,
  job: Job<{ taskId: string }>,
  token: string | undefined,
  task: TaskRow,
): Promise<void> {
  const { db } = deps;
  const resource = task.hostId ? `host:${task.hostId}` : `task:${task.id}`;
  const olderUnfinished = async () => {
    if (!task.hostId) return false;
    const [older] = await db
      .select({ id: tasks.id })
      .from(tasks)
      .where(
        and(
          eq(tasks.hostId, task.hostId),
          ne(tasks.id, task.id),
          inArray(tasks.status, ["pending", "running"]),
          // Compared in SQL against this task's own stored created_at: Postgres keeps microseconds
          // but the row read into JS holds milliseconds, so a task created earlier in the same
          // millisecond compared as *later* and two tasks of one host ran out of order or at once
          // (found by test/integration/task-wait.test.ts).
          sql`(${tasks.createdAt}, ${tasks.id}) < ((select t.created_at from ${tasks} t where t.id = ${task.id}), ${task.id}::uuid)`,
        ),
      )
      .limit(1);
    return Boolean(older);
  };
  // Tasks of one host run one at a time and in creation order; a busy host delays, never fails.
  // The job is parked (delayed by the long safety-net interval) and woken by whoever ends the
  // task ahead of it (shared/queue/wake.ts): a flood of waiting tasks costs nothing per second.
  const park = async (): Promise<never> => {
    await job.moveToDelayed(Date.now() + deps.config.TASK_WAIT_RECHECK_SECONDS * 1000, token);
    // The task ahead may have ended between our look and the park, and its wake found this job
    // still active: look once more, now that a wake would find it delayed.
    if (!(await olderUnfinished())) await promoteJob(deps.queues, task);
    throw new DelayedError();
  };
  if (await olderUnfinished()) await park();
  const lock = await deps.locks.acquire(resource);
  if (!lock) await delayJob(job, token, LOCK_RETRY_DELAY_MS);
  let heartbeat: NodeJS.Timeout | undefined;
  let ended = false;
  try {
    if (await olderUnfinished()) {
      await lock!.release();
      await park();
    }
    const plan = processor.plan(task);
    const steps: TaskStep[] = plan.map((name) => ({ name, status: "pending", started_at: null, duration_ms: null }));
    const [claimed] = await db
      .update(tasks)
      .set({
        status: "running",
        attempt: sql`${tasks.attempt} + 1`,
        startedAt: sql`coalesce(${tasks.startedAt}, now())`,
        heartbeatAt: new Date(),
        steps,
        progressPercent: 0,
        progressMessage: "started",
      })
      .where(and(eq(tasks.id, task.id), inArray(tasks.status, ["pending", "running"])))
      .returning();
    if (!claimed) return; // someone else finished or canceled it meanwhile
    // Every committed change of the task row below is announced to the live streams (docs/architecture.md#live-updates).
    const changed = () => deps.notifyLive({ kind: "task", id: claimed.id });
    changed();
    // The task's own lines add the attempt; task_id, kind, host_id and request_id (the HTTP request
    // or scheduler run that asked for the task) come from the log context entered above.
    const log = deps.logger.child({ attempt: claimed.attempt });
    const claimedAt = performance.now();
    // One observation per task, timed on this process's clock from the claim of the attempt that
    // ended it (an attempt handed back for a retry is not an outcome; Postgres's clock is not ours).
    const observe = (outcome: TaskOutcome) =>
      deps.metrics.taskDuration.observe({ kind: claimed.kind, outcome }, (performance.now() - claimedAt) / 1000);
    // Task events concern the host's owner (docs/api.md#events).
    const [owner] = claimed.hostId
      ? await db.select({ userId: hosts.userId }).from(hosts).where(eq(hosts.id, claimed.hostId))
      : [];
    const ownerId = owner?.userId ?? null;
    if (claimed.attempt === 1) {
      await recordEvent(db, {
        type: "task.started",
        message: `task ${claimed.kind} started`,
        userId: ownerId,
        hostId: claimed.hostId,
        taskId: claimed.id,
        metadata: { kind: claimed.kind },
      });
    }
    heartbeat = setInterval(() => {
      void lock!.extend().catch(() => {});
      void db
        .update(tasks)
        .set({ heartbeatAt: new Date() })
        .where(and(eq(tasks.id, claimed.id), eq(tasks.status, "running")))
        .catch(() => {});
    }, Math.min(TASK_HEARTBEAT_MS, deps.locks.ttlMs / 3));

    let result: unknown = null;
    // Steps may run at once (concurrently): their writes go one after another, each with the
    // steps as they are when it runs, so a slower earlier write never lands over a later one.
    let persisting: Promise<void> = Promise.resolve();
    const persistSteps = (message: string): Promise<void> =>
      (persisting = persisting.catch(() => {}).then(() => writeSteps(message)));
    const writeSteps = async (message: string) => {
      const done = steps.filter((s) => s.status === "succeeded" || s.status === "skipped").length;
      await db
        .update(tasks)
        .set({
          steps,
          progressPercent: steps.length ? Math.min(99, Math.floor((done / steps.length) * 100)) : 0,
          progressMessage: message,
          heartbeatAt: new Date(),
        })
        .where(and(eq(tasks.id, claimed.id), eq(tasks.status, "running")));
      changed();
    };
    const findStep = (name: string) => {
      let s = steps.find((x) => x.name === name);
      if (!s) {
        s = { name, status: "pending", started_at: null, duration_ms: null };
        steps.push(s);
      }
      return s;
    };
    const ctx: TaskContext = {
      deps,
      task: claimed,
      log,
      async step(name, fn) {
        const [row] = await db.select({ cancel: tasks.cancelRequested }).from(tasks).where(eq(tasks.id, claimed.id));
        if (row?.cancel) throw new TaskCanceled();
        const s = findStep(name);
        const started = Date.now();
        s.status = "running";
        s.started_at = new Date(started).toISOString();
        await persistSteps(name.replace(/_/g, " "));
        try {
          const outcome = await fn();
          s.status = outcome === "skipped" ? "skipped" : "succeeded";
        } catch (err) {
          s.status = "failed";
          throw err;
        } finally {
          s.duration_ms = Date.now() - started;
          await persistSteps(s.status === "failed" ? `${name.replace(/_/g, " ")} failed` : `${name.replace(/_/g, " ")} done`);
        }
      },
      async skip(...names) {
        for (const n of names) {
          const s = findStep(n);
          s.status = "skipped";
          s.duration_ms = 0;
        }
        await persistSteps("skipped");
      },
      setResult(r) {
        result = r;
      },
    };

    try {
      await processor.run(ctx);
    } catch (err) {
      // The cleanup (host `stopped`/`failed`, containers stopped) runs before the task turns
      // terminal: whoever waits for the task then reads the host's final state, never `starting`.
      if (err instanceof TaskCanceled) {
        await processor.onCanceled?.(ctx).catch((e: unknown) => log.error({ err: e }, "cleanup after cancel failed"));
        ended = await finish(deps, claimed, ownerId, "canceled", { code: "canceled", message: "canceled on request", steps, result: null });
        if (ended) observe("canceled");
        return;
      }
      if (!(err instanceof TaskError) && isInfrastructureError(err)) throw err; // Postgres/Redis down: retry the job
      const te = toTaskError(err);
      if (!(err instanceof TaskError)) log.error({ err }, "task step failed");
      // The engine itself is down (its dockerd stopped, its machine unreachable): the task waits for
      // it instead of spending its retries in seconds and failing. No attempt is used; the task's
      // deadline still applies (the sweeper's stale limit), and the worker's host-ops consumer is
      // paused meanwhile (worker/consumers.ts). docs/engines.md#failures.
      // Bounded: once the task has waited past the stale limit it takes the normal retry path
      // below. The wait does not refresh the heartbeat, so the sweeper's stale rule still sees it.
      const waitedMs = Date.now() - (claimed.startedAt?.getTime() ?? Date.now());
      if (
        te.code === "docker_unavailable" &&
        waitedMs < deps.config.TASK_STALE_AFTER_SECONDS * 1000 &&
        !(await Promise.race([deps.runtime.ping().catch(() => false), new Promise<boolean>((r) => setTimeout(() => r(false), ENGINE_PING_MS))]))
      ) {
        await db
          .update(tasks)
          .set({ progressMessage: "waiting for the engine: its Docker does not answer", steps })
          .where(and(eq(tasks.id, claimed.id), eq(tasks.status, "running")));
        changed();
        log.warn({ err: te.message }, "engine unavailable: the task waits for it");
        await job.moveToDelayed(Date.now() + ENGINE_WAIT_MS, token);
        throw new DelayedError();
      }
      const attempts = job.opts.attempts ?? 1;
      if (te.transient && job.attemptsMade + 1 < attempts) {
        await db
          .update(tasks)
          .set({ progressMessage: `retrying (attempt ${job.attemptsMade + 2}/${attempts - 1})`, steps })
          .where(eq(tasks.id, claimed.id));
        changed();
        throw te; // BullMQ retries with exponential backoff; the task stays `running`
      }
      await processor.onFailure?.(ctx, te).catch((e: unknown) => log.error({ err: e }, "cleanup after failure failed"));
      ended = await finish(deps, claimed, ownerId, "failed", { code: te.code, message: te.message, steps, result });
      if (ended) observe("failed");
      throw new UnrecoverableError(te.code);
    }
    ended = await finish(deps, claimed, ownerId, "succeeded", { code: null, message: null, steps, result });
    if (ended) observe("succeeded");
  } finally {
    if (heartbeat) clearInterval(heartbeat);
    await lock?.release().catch(() => {});
    // After the release, so the woken job finds the lock free.
    if (ended && task.hostId) await deps.wakeHost(task.hostId);
  }
}

async function finish(
  deps: WorkerDeps,
  task: TaskRow,
  ownerId: string | null,
  status: "succeeded" | "failed" | "canceled",
  o: { code: string | null; message: string | null; steps: TaskStep[]; result: unknown },
): Promise<boolean> {
  const ended = await deps.db.transaction(async (tx) => {
    const [row] = await tx
      .update(tasks)
      .set({
        status,
        errorCode: o.code,
        errorMessage: o.message?.slice(0, 1000) ?? null,
        steps: o.steps,
        result: o.result ?? null,
        progressPercent: status === "succeeded" ? 100 : undefined,
        progressMessage: status === "succeeded" ? "done" : status,
        finishedAt: new Date(),
      })
      .where(and(eq(tasks.id, task.id), eq(tasks.status, "running")))
      .returning();
    if (!row) return false;
    await recordEvent(tx, {
      type: `task.${status}`,
      level: status === "failed" ? "error" : status === "canceled" ? "warn" : "info",
      message: `task ${task.kind} ${status}`,
      userId: ownerId,
      hostId: task.hostId,
      taskId: task.id,
      metadata: status === "failed" ? { kind: task.kind, error_code: o.code } : { kind: task.kind },
    });
    return true;
  });
  if (ended) deps.notifyLive({ kind: "task", id: task.id }); // after commit
  return ended;
}
