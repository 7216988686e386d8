import type { EngineRow } from "../shared/db/schema/index.js";
import type { WorkerConfig } from "../shared/config/worker.js";
import type { Queues } from "../shared/queue/queues.js";
import type { ServiceDeps } from "../shared/services/context.js";
import type { SshProbe } from "./hosts/ssh-ready.js";
import type { TestGatewaySpare } from "./network/test-spare.js";
import type { PoolKeeper } from "./pool/keeper.js";
import type { WorkerMetrics } from "./metrics.js";
import type { Runtime } from "./runtime/runtime.js";
import type { HostLocks } from "./tasks/host-lock.js";

/** Everything the worker's processors need, built once in worker/main.ts (or by a test). */
export interface WorkerDeps extends ServiceDeps {
  config: WorkerConfig;
  runtime: Runtime;
  /**
   * A Runtime for another engine (a host move's target, worker/processors/host-move.ts). Absent:
   * a Docker runtime built from the engine's row (worker/engine.ts connectionOf); tests inject
   * in-memory engines here.
   */
  runtimeFor?: (engine: EngineRow) => Runtime;
  /** Whether a host's sshd answers with its pinned key (the wait_ssh step). */
  sshProbe: SshProbe;
  queues: Queues;
  locks: HostLocks;
  /** This process's Prometheus registry and the series the runner and egress checks feed. */
  metrics: WorkerMetrics;
  /** The warm-pool keeper of this process (docs/architecture.md#warm-pool); absent in bare test deps. */
  pool?: PoolKeeper;
  /** The spare egress-test gateway of this process (worker/network/test-spare.ts); absent in bare test deps. */
  testSpare?: TestGatewaySpare;
}
