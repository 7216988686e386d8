import type { Logger } from "../logger.js";
import type { LiveNotifier } from "../services/live/notify.js";
import { enqueueTask, type Queues, type TaskRef } from "./queues.js";

const ENQUEUE_TIMEOUT_MS = 3000;

/**
 * The `enqueue` dependency: after a task row is committed, hand it to BullMQ. A failure (Redis
 * down) is logged and swallowed: the request already succeeded and the sweeper enqueues pending
 * tasks without a job (docs/architecture.md#async-work). Bounded, so a dead Redis never hangs a request.
 */
export function createEnqueuer(queues: Queues, logger: Logger, notifyLive: LiveNotifier) {
  // `log`: the caller's logger (a request's, so the line carries its request_id).
  return async (task: TaskRef, log: Logger = logger): Promise<void> => {
    // Every verb and scheduler that creates a task enqueues it right after its commit: the one
    // place that announces the new task, and the host changes committed with it, to the live
    // streams (docs/architecture.md#live-updates).
    notifyLive({ kind: "task", id: task.id });
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        enqueueTask(queues, task),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error("enqueue timed out")), ENQUEUE_TIMEOUT_MS);
        }),
      ]);
    } catch (err) {
      log.warn({ task_id: task.id, kind: task.kind, err: (err as Error).message }, "enqueue failed; the sweeper will retry");
    } finally {
      clearTimeout(timer);
    }
  };
}
