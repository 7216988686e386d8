import type { WorkerConfig } from "../shared/config/worker.js";
import type { Queues } from "../shared/queue/queues.js";
import type { ServiceDeps } from "../shared/services/context.js";
import type { Runtime } from "./runtime/runtime.js";
import type { HostLocks } from "./tasks/host-lock.js";

/** Everything the worker's processors need, built once in worker/main.ts (or by a test). */
export interface WorkerDeps extends ServiceDeps {
  config: WorkerConfig;
  runtime: Runtime;
  queues: Queues;
  locks: HostLocks;
}
