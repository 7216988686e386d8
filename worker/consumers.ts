import { type Job, UnrecoverableError, Worker } from "bullmq";
import type { Redis } from "ioredis";
import { hostOpsQueue, isJobName, JOB_CONTRACTS, QUEUE_NAMES, type QueueName } from "../shared/queue/contracts.js";
import type { WorkerDeps } from "./deps.js";
import type { JobHandler } from "./registry.js";

/**
 * BullMQ consumers and the job schedulers (docs/engines.md#queues). A worker takes host operations
 * only from its own engine's host-ops queue, and egress tests and cluster-wide schedulers from the
 * shared queues. Schedulers are upserted by every replica and fired by exactly one (BullMQ keeps one
 * scheduler per id and queue): the reconciler, which touches Docker, once per engine on that
 * engine's queue; expiry, sweep and retention, which only touch Postgres and the queues, once for
 * the whole cluster on `system`.
 */
export async function startConsumers(
  deps: WorkerDeps,
  registry: Map<string, JobHandler>,
  connection: Redis,
): Promise<{ close: () => Promise<void>; engineUp: (up: boolean) => void }> {
  const { config, logger } = deps;
  const process = async (job: Job, token?: string) => {
    if (!isJobName(job.name)) throw new UnrecoverableError(`unknown job ${job.name}`);
    const parsed = JOB_CONTRACTS[job.name].payload.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`invalid payload for ${job.name}`);
    const handler = registry.get(job.name)!;
    await handler(job, token);
  };
  const ownHostOps = hostOpsQueue(config.ENGINE_ID);
  const consumed: [QueueName, number][] = [
    [ownHostOps, config.WORKER_CONCURRENCY],
    [QUEUE_NAMES.egressOps, config.WORKER_CONCURRENCY],
    [QUEUE_NAMES.system, 1],
    // Webhook deliveries and their dispatcher (docs/api.md#webhooks-delivery).
    [QUEUE_NAMES.webhooks, config.WEBHOOK_CONCURRENCY],
  ];
  const workers = consumed.map(([name, concurrency]) => {
    const w = new Worker(name, process, {
      connection,
      prefix: config.REDIS_PREFIX,
      concurrency,
      // A killed worker's job is redelivered once its lock lapses (stalled-job detection, every
      // third of the lease): within ~4/3 × WORKER_LEASE_SECONDS (docs/engines.md#failures). One
      // stalled too often fails in BullMQ; its task is still `running`, and the sweeper queues it
      // again once its heartbeat is older than the lease (worker/schedulers/sweep.ts).
      lockDuration: config.WORKER_LEASE_SECONDS * 1000,
      stalledInterval: Math.ceil((config.WORKER_LEASE_SECONDS * 1000) / 3),
      maxStalledCount: 5,
    });
    w.on("failed", (job, err) => {
      if (job) logger.debug({ job: job.name, job_id: job.id, err: err.message }, "job attempt failed");
    });
    w.on("error", (err) => logger.warn({ err: err.message, queue: name }, "queue worker error"));
    return w;
  });

  await upsertSchedulers(deps);
  // A Redis that restarts without its data (no persistence) comes back without the schedulers, and
  // the sweeper that re-queues lost tasks is one of them: every worker puts them back each time
  // its queue connection is ready again (an upsert of an existing scheduler changes nothing).
  let open = true;
  const onReady = () => {
    if (!open) return;
    upsertSchedulers(deps).catch((err: unknown) => logger.warn({ err: (err as Error).message }, "could not register the schedulers again"));
  };
  connection.on("ready", onReady);
  // While this worker's Docker does not answer it takes no host operation (each would only burn
  // its transient retries and fail `docker_unavailable`): they wait in the queue for the engine
  // (docs/engines.md#failures). Jobs already running finish or retry as they would.
  const hostOps = workers[0]!;
  let paused = false;
  const engineUp = (up: boolean) => {
    if (!open || up === !paused) return;
    paused = !up;
    if (up) hostOps.resume();
    else void hostOps.pause(true).catch((err: unknown) => logger.warn({ err: (err as Error).message }, "could not pause host operations"));
    logger.info({ engine_id: config.ENGINE_ID }, up ? "docker answers again: host operations resumed" : "docker does not answer: host operations paused");
  };
  return {
    engineUp,
    close: async () => {
      open = false;
      connection.off("ready", onReady);
      await Promise.all(workers.map((w) => w.close()));
    },
  };
}

async function upsertSchedulers(deps: WorkerDeps): Promise<void> {
  const { config } = deps;
  const ownHostOps = hostOpsQueue(config.ENGINE_ID);
  const system = deps.queues.get(QUEUE_NAMES.system);
  const opts = { removeOnComplete: 100, removeOnFail: 100 };
  const every = {
    "system.expiry": config.EXPIRY_SCAN_INTERVAL_SECONDS * 1000,
    "system.sweep": config.SWEEP_INTERVAL_SECONDS * 1000,
    "system.engines": config.HEARTBEAT_INTERVAL_SECONDS * 1000,
    "system.retention": 86_400_000,
  } as const;
  for (const [name, ms] of Object.entries(every)) {
    await system.upsertJobScheduler(name, { every: ms }, { name, data: {}, opts });
  }
  // Before engines, the reconciler's scheduler lived on `system`: one left there by an older
  // worker would reconcile the default engine from any engine's worker.
  await system.removeJobScheduler("system.reconcile");
  await deps.queues
    .get(QUEUE_NAMES.webhooks)
    .upsertJobScheduler("system.webhook-dispatch", { every: config.WEBHOOK_DISPATCH_INTERVAL_MS }, { name: "system.webhook-dispatch", data: {}, opts });
  await deps.queues
    .get(ownHostOps)
    .upsertJobScheduler("system.reconcile", { every: config.RECONCILE_INTERVAL_SECONDS * 1000 }, { name: "system.reconcile", data: {}, opts });
  // The idle scan (docs/idle.md#scan), also per engine: it reads this engine's containers.
  await deps.queues
    .get(ownHostOps)
    .upsertJobScheduler("system.idle", { every: config.IDLE_SCAN_INTERVAL_SECONDS * 1000 }, { name: "system.idle", data: {}, opts });
  // Attestation (docs/egress.md#attestation): each binding has its own jittered due time; the
  // scheduler only looks for due ones, often enough (a twentieth of the interval, 1–30 s) that a
  // drift is caught within one interval.
  const attestEvery = Math.min(30, Math.max(1, Math.floor(config.EGRESS_ATTEST_INTERVAL_SECONDS / 20))) * 1000;
  if (config.EGRESS_ATTEST_INTERVAL_SECONDS > 0 && config.EGRESS_CHECKS) {
    await deps.queues.get(ownHostOps).upsertJobScheduler("system.attest", { every: attestEvery }, { name: "system.attest", data: {}, opts });
  } else {
    await deps.queues.get(ownHostOps).removeJobScheduler("system.attest");
  }
}
