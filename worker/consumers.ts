import { type Job, UnrecoverableError, Worker } from "bullmq";
import type { Redis } from "ioredis";
import { isJobName, JOB_CONTRACTS, QUEUE_NAMES, type QueueName } from "../shared/queue/contracts.js";
import type { WorkerDeps } from "./deps.js";
import type { JobHandler } from "./registry.js";

/**
 * BullMQ consumers for every queue, and the job schedulers (reconcile, expiry, sweep, retention):
 * upserted by every replica, fired by exactly one (BullMQ keeps one scheduler per id).
 */
export async function startConsumers(
  deps: WorkerDeps,
  registry: Map<string, JobHandler>,
  connection: Redis,
): Promise<{ close: () => Promise<void> }> {
  const { config, logger } = deps;
  const process = async (job: Job, token?: string) => {
    if (!isJobName(job.name)) throw new UnrecoverableError(`unknown job ${job.name}`);
    const parsed = JOB_CONTRACTS[job.name].payload.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`invalid payload for ${job.name}`);
    const handler = registry.get(job.name)!;
    await handler(job, token);
  };
  const concurrency: Record<QueueName, number> = {
    [QUEUE_NAMES.hostOps]: config.WORKER_CONCURRENCY,
    [QUEUE_NAMES.egressOps]: config.WORKER_CONCURRENCY,
    [QUEUE_NAMES.system]: 1,
  };
  const workers = Object.values(QUEUE_NAMES).map((name) => {
    const w = new Worker(name, process, {
      connection,
      prefix: config.REDIS_PREFIX,
      concurrency: concurrency[name],
      // A killed worker's job is redelivered once its lock lapses (stalled-job detection).
      lockDuration: 30_000,
      stalledInterval: 15_000,
      maxStalledCount: 5,
    });
    w.on("failed", (job, err) => {
      if (job) logger.debug({ job: job.name, job_id: job.id, err: err.message }, "job attempt failed");
    });
    w.on("error", (err) => logger.warn({ err: err.message, queue: name }, "queue worker error"));
    return w;
  });

  const system = deps.queues.get(QUEUE_NAMES.system);
  const every = {
    "system.reconcile": config.RECONCILE_INTERVAL_SECONDS * 1000,
    "system.expiry": config.EXPIRY_SCAN_INTERVAL_SECONDS * 1000,
    "system.sweep": config.SWEEP_INTERVAL_SECONDS * 1000,
    "system.retention": 86_400_000,
  } as const;
  for (const [name, ms] of Object.entries(every)) {
    await system.upsertJobScheduler(name, { every: ms }, { name, data: {}, opts: { removeOnComplete: 100, removeOnFail: 100 } });
  }
  return {
    close: async () => {
      await Promise.all(workers.map((w) => w.close()));
    },
  };
}
