import type { Job } from "bullmq";
import { tasks } from "../shared/db/schema/index.js";
import { newRequestId, withLogContext } from "../shared/log-context.js";
import { JOB_CONTRACTS, type JobName } from "../shared/queue/contracts.js";
import type { WorkerDeps } from "./deps.js";
import { runAttestations } from "./network/attest.js";
import { taskProcessors } from "./processors/host-flows.js";
import { runExpiryScan } from "./schedulers/expiry.js";
import { runIdleScan } from "./schedulers/idle.js";
import { runReconcile } from "./schedulers/reconcile.js";
import { runRetention } from "./schedulers/retention.js";
import { runSweep } from "./schedulers/sweep.js";
import { runEngineHealth } from "./schedulers/engine-health.js";
import { runWebhookDispatch } from "./schedulers/webhook-dispatch.js";
import { deliverWebhook } from "./processors/webhook-deliver.js";
import { runTaskJob } from "./tasks/runner.js";

export type JobHandler = (job: Job, token: string | undefined) => Promise<void>;

/** One scheduler run: its id, recorded on the tasks it creates (README "Observability"). */
export interface SchedulerRun {
  requestId: string;
}

type SchedulerFn<R extends Record<string, number> = Record<string, number>> = (deps: WorkerDeps, run: SchedulerRun) => Promise<R>;

/**
 * Scheduler runs leave a task row only when they changed something or failed (docs/api.md#task-object),
 * so a quiet system does not fill the task list with no-ops.
 *
 * Each run gets a request id of its own, as an HTTP request does: its log lines carry it, its task
 * row and the tasks it creates (a reconcile's repairs, an expiry's stops) record it, and the
 * worker's lines for those tasks carry it in turn.
 */
function scheduler(deps: WorkerDeps, kind: JobName, fn: SchedulerFn): JobHandler {
  return async () => {
    const requestId = newRequestId();
    await withLogContext({ request_id: requestId, kind }, async () => {
      const started = new Date();
      try {
        const result = await fn(deps, { requestId });
        if (Object.values(result).some((n) => n > 0)) {
          await deps.db.insert(tasks).values({
            kind,
            status: "succeeded",
            requestedBy: "system:scheduler",
            origin: "system",
            attempt: 1,
            progressPercent: 100,
            progressMessage: "done",
            result,
            requestId,
            startedAt: started,
            finishedAt: new Date(),
          });
        }
      } catch (err) {
        deps.logger.error({ err }, "scheduler run failed");
        await deps.db
          .insert(tasks)
          .values({
            kind,
            status: "failed",
            requestedBy: "system:scheduler",
            origin: "system",
            attempt: 1,
            errorCode: "internal_error",
            errorMessage: "scheduler run failed (see the worker logs)",
            requestId,
            startedAt: started,
            finishedAt: new Date(),
          })
          .catch(() => {});
        throw err;
      }
    });
  };
}

/**
 * One run at a time per engine for schedulers whose runs can outlast their tick (attestation,
 * the idle scan): BullMQ queues the next run as soon as one starts, and overlapping runs would
 * multiply the work (and the probes), break EGRESS_ATTEST_CONCURRENCY and fill every host-ops
 * slot. A run that finds the lock held does nothing; the lock lapses if its holder dies.
 */
function oneAtATime<R extends Record<string, number>>(name: string, fn: SchedulerFn<R>, idle: R): SchedulerFn<R> {
  return async (deps, run) => {
    const lock = await deps.locks.acquire(`run:${name}:${deps.config.ENGINE_ID}`);
    if (!lock) return idle;
    const keep = setInterval(() => void lock.extend().catch(() => {}), Math.max(1000, deps.locks.ttlMs / 3));
    try {
      return await fn(deps, run);
    } finally {
      clearInterval(keep);
      await lock.release().catch(() => {});
    }
  };
}

/** Job name → handler. Fails at boot if any job of the contracts has no handler (docs/architecture.md#tree). */
export function buildRegistry(deps: WorkerDeps): Map<JobName, JobHandler> {
  const registry = new Map<JobName, JobHandler>();
  for (const [kind, processor] of Object.entries(taskProcessors)) {
    registry.set(kind as JobName, (job, token) => runTaskJob(deps, processor, job as Job<{ taskId: string }>, token));
  }
  registry.set("system.expiry", scheduler(deps, "system.expiry", runExpiryScan));
  registry.set("system.reconcile", scheduler(deps, "system.reconcile", runReconcile));
  // A task row only when an attestation blocked or restored a host: the passes are in their own history.
  registry.set(
    "system.attest",
    scheduler(
      deps,
      "system.attest",
      oneAtATime(
        "system.attest",
        async (d) => {
          const r = await runAttestations(d);
          return { blocked: r.blocked, recovered: r.recovered };
        },
        { blocked: 0, recovered: 0 },
      ),
    ),
  );
  registry.set("system.sweep", scheduler(deps, "system.sweep", runSweep));
  registry.set("system.engines", scheduler(deps, "system.engines", runEngineHealth));
  registry.set("system.retention", scheduler(deps, "system.retention", runRetention));
  registry.set("system.idle", scheduler(deps, "system.idle", oneAtATime("system.idle", async (d, run) => {
    const r = await runIdleScan(d, run);
    // A task row only when something was stopped (the scans that change nothing leave none).
    return { idle_stopped: r.idle_stopped };
  }, { idle_stopped: 0 })));
  // Webhooks (docs/api.md#webhooks-delivery): no task rows (one run every few seconds, one job per
  // delivery: the delivery log is their record).
  registry.set("system.webhook-dispatch", async () => {
    await withLogContext({ request_id: newRequestId(), kind: "system.webhook-dispatch" }, async () => {
      const r = await runWebhookDispatch(deps);
      if (r.deliveries > 0 || r.pruned > 0) deps.logger.debug(r, "webhook dispatch run");
    });
  });
  registry.set("system.webhook-deliver", (job) =>
    withLogContext({ kind: "system.webhook-deliver" }, () => deliverWebhook(deps, job as Job<{ deliveryId: string }>)),
  );
  const missing = (Object.keys(JOB_CONTRACTS) as JobName[]).filter((n) => !registry.has(n));
  if (missing.length) throw new Error(`no handler registered for jobs: ${missing.join(", ")}`);
  return registry;
}
