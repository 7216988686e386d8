import { Queue, type ConnectionOptions } from "bullmq";
import type { Redis } from "ioredis";
import { JOB_CONTRACTS, type JobName, type JobPayload, QUEUE_NAMES, type QueueName, queueOf, type TaskKind } from "./contracts.js";

/** Retry policy for transient failures: 3 retries at 2 s, 4 s, 8 s (docs/architecture.md#tasks). */
export const TASK_JOB_ATTEMPTS = 4;
export const TASK_JOB_BACKOFF = { type: "exponential" as const, delay: 2000 };

export interface Queues {
  /** A queue by name; an engine's host-ops queue is opened on first use. */
  get(name: QueueName): Queue;
  /**
   * Typed enqueue: the payload is validated against the job's contract before it is sent; a
   * host-ops job goes to `engineId`'s queue (queueOf).
   */
  add<N extends JobName>(
    name: N,
    payload: JobPayload<N>,
    opts?: {
      jobId?: string;
      delay?: number;
      engineId?: string | null;
      /** Another retry policy than the tasks' (webhook deliveries: WEBHOOK_MAX_ATTEMPTS, WEBHOOK_RETRY_BASE_MS). */
      attempts?: number;
      backoff?: { type: "exponential" | "fixed"; delay: number };
    },
  ): Promise<void>;
  close(): Promise<void>;
}

export function createQueues(connection: Redis | ConnectionOptions, prefix: string): Queues {
  const queues = new Map<QueueName, Queue>();
  const get = (name: QueueName): Queue => {
    let q = queues.get(name);
    if (!q) queues.set(name, (q = new Queue(name, { connection: connection as ConnectionOptions, prefix })));
    return q;
  };
  for (const name of Object.values(QUEUE_NAMES)) get(name);
  return {
    get,
    async add(name, payload, opts = {}) {
      const contract = JOB_CONTRACTS[name];
      const data = contract.payload.parse(payload);
      await get(queueOf(name, opts.engineId)).add(name, data, {
        jobId: opts.jobId,
        delay: opts.delay,
        attempts: opts.attempts ?? TASK_JOB_ATTEMPTS,
        backoff: opts.backoff ?? TASK_JOB_BACKOFF,
        removeOnComplete: { age: 3600, count: 2000 },
        removeOnFail: { age: 7 * 86400 },
      });
    },
    async close() {
      await Promise.all([...queues.values()].map((q) => q.close()));
    },
  };
}

/** What routes a task's job: its id (= the job id), kind and engine (its queue). */
export interface TaskRef {
  id: string;
  kind: string;
  engineId: string | null;
}

/** Enqueue the job of a task row: job id = task id, so a second add of the same task is a no-op. */
export function enqueueTask(queues: Queues, task: TaskRef): Promise<void> {
  return queues.add(task.kind as TaskKind, { taskId: task.id }, { jobId: task.id, engineId: task.engineId });
}
