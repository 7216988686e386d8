import { Counter, Histogram } from "prom-client";
import type { Registry } from "../shared/metrics/registry.js";

export type TaskOutcome = "succeeded" | "failed" | "canceled";

export interface WorkerMetrics {
  registry: Registry;
  /** `ccp_task_duration_seconds{kind,outcome}`: from the claim of the final attempt to the terminal state (the runner). */
  taskDuration: Histogram<"kind" | "outcome">;
  /**
   * `ccp_egress_verifications_total{kind,mode,result}`: `kind` is `verify` (a host's gateway after a
   * change) or `test` (an egress test task); `result` is `passed` or the task error code.
   */
  egressVerifications: Counter<"kind" | "mode" | "result">;
}

/** The worker's series (README "Observability"), on the process's registry. */
export function createWorkerMetrics(registry: Registry): WorkerMetrics {
  return {
    registry,
    taskDuration: new Histogram({
      name: "ccp_task_duration_seconds",
      help: "Task run time from the claim of its final attempt to its terminal state, by kind and outcome",
      labelNames: ["kind", "outcome"] as const,
      // Tasks take from milliseconds (sync-keys) to minutes (an image-heavy create).
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600],
      registers: [registry],
    }),
    egressVerifications: new Counter({
      name: "ccp_egress_verifications_total",
      help: "Egress verifications and tests by kind (verify|test), mode and result (passed or the error code)",
      labelNames: ["kind", "mode", "result"] as const,
      registers: [registry],
    }),
  };
}
