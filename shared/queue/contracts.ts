import { z } from "zod";

/**
 * Queue contracts (docs/architecture.md#tasks, docs/architecture.md#tree): queue names, job names, one zod payload per job.
 * Payloads carry ids only; Postgres holds the state. Evolve them additively.
 */
export const QUEUE_NAMES = {
  hostOps: "host-ops",
  egressOps: "egress-ops",
  system: "system",
  // Webhook deliveries and their dispatcher (docs/api.md#webhooks): their own queue, so a slow
  // receiver never delays host operations or the system schedulers.
  webhooks: "webhooks",
} as const;
/**
 * A queue's name: the static ones above, or one engine's host-ops queue (`host-ops.<engine>`,
 * docs/engines.md#queues). The `default` engine keeps the plain `host-ops`, so an install that
 * had one engine keeps its queued jobs.
 */
export type QueueName = (typeof QUEUE_NAMES)[keyof typeof QUEUE_NAMES] | `${typeof QUEUE_NAMES.hostOps}.${string}`;

export const DEFAULT_ENGINE_ID = "default";

/** The host-ops queue of one engine: operations on its hosts run only on its workers. */
export function hostOpsQueue(engineId: string | null | undefined): QueueName {
  return !engineId || engineId === DEFAULT_ENGINE_ID ? QUEUE_NAMES.hostOps : `${QUEUE_NAMES.hostOps}.${engineId}`;
}

const taskPayload = z.object({ taskId: z.string().uuid() });
const schedulerPayload = z.object({}).passthrough();

export const JOB_CONTRACTS = {
  "host.create": { queue: QUEUE_NAMES.hostOps, payload: taskPayload },
  "host.start": { queue: QUEUE_NAMES.hostOps, payload: taskPayload },
  "host.stop": { queue: QUEUE_NAMES.hostOps, payload: taskPayload },
  "host.rebuild": { queue: QUEUE_NAMES.hostOps, payload: taskPayload },
  "host.delete": { queue: QUEUE_NAMES.hostOps, payload: taskPayload },
  "host.ensure-running": { queue: QUEUE_NAMES.hostOps, payload: taskPayload },
  "host.apply-egress": { queue: QUEUE_NAMES.hostOps, payload: taskPayload },
  "host.sync-keys": { queue: QUEUE_NAMES.hostOps, payload: taskPayload },
  // Runs on the source engine's queue (the host's engine when requested); the target engine is
  // `target_engine_id` in the task row's payload (docs/api.md#hosts-move).
  "host.move": { queue: QUEUE_NAMES.hostOps, payload: taskPayload },
  "egress.test": { queue: QUEUE_NAMES.egressOps, payload: taskPayload },
  "system.expiry": { queue: QUEUE_NAMES.system, payload: schedulerPayload },
  // Touches Docker: one scheduler per engine, on that engine's host-ops queue (docs/engines.md#queues).
  "system.reconcile": { queue: QUEUE_NAMES.hostOps, payload: schedulerPayload },
  // Continuous egress attestation (docs/egress.md#attestation): per engine too (it runs probes there).
  "system.attest": { queue: QUEUE_NAMES.hostOps, payload: schedulerPayload },
  "system.sweep": { queue: QUEUE_NAMES.system, payload: schedulerPayload },
  // Marks the hosts of engines that stopped answering `unreachable` (docs/engines.md#health).
  "system.engines": { queue: QUEUE_NAMES.system, payload: schedulerPayload },
  "system.retention": { queue: QUEUE_NAMES.system, payload: schedulerPayload },
  // The idle scan reads containers' stats and sockets: one scheduler per engine, like the reconciler (docs/idle.md#scan).
  "system.idle": { queue: QUEUE_NAMES.hostOps, payload: schedulerPayload },
  // Webhooks (docs/api.md#webhooks): the dispatcher matches new events to webhooks and queues one
  // delivery each; a delivery job POSTs one of them (no task row: `system.`, like the schedulers).
  "system.webhook-dispatch": { queue: QUEUE_NAMES.webhooks, payload: schedulerPayload },
  "system.webhook-deliver": { queue: QUEUE_NAMES.webhooks, payload: z.object({ deliveryId: z.string().uuid() }) },
} as const;

export type JobName = keyof typeof JOB_CONTRACTS;
export type TaskKind = Exclude<JobName, `system.${string}`>;
export const TASK_KINDS = Object.keys(JOB_CONTRACTS).filter((k) => !k.startsWith("system.")) as TaskKind[];
export const HOST_TASK_KINDS = TASK_KINDS.filter((k) => k.startsWith("host.")) as TaskKind[];

export type JobPayload<N extends JobName> = z.output<(typeof JOB_CONTRACTS)[N]["payload"]>;

export function isJobName(name: string): name is JobName {
  return Object.hasOwn(JOB_CONTRACTS, name);
}

/**
 * The queue that carries a job: a host-ops job goes to its engine's queue (a task's `engine_id`;
 * a scheduler's, the engine it reconciles), every other job to its contract's queue.
 */
export function queueOf(name: JobName, engineId: string | null | undefined): QueueName {
  const queue = JOB_CONTRACTS[name].queue;
  return queue === QUEUE_NAMES.hostOps ? hostOpsQueue(engineId) : queue;
}

/** Kinds that start or keep a host running; canceling one leaves the host stopped (docs/architecture.md#tasks). */
export const START_KINDS: readonly TaskKind[] = ["host.create", "host.start", "host.rebuild", "host.ensure-running"];
