import type { Logger } from "../logger.js";
import { enqueueTask, type Queues } from "./queues.js";

const ENQUEUE_TIMEOUT_MS = 3000;

/**
 * The `enqueue` dependency: after a task row is committed, hand it to BullMQ. A failure (Redis
 * down) is logged and swallowed: the request already succeeded and the sweeper enqueues pending
 * tasks without a job (docs/architecture.md#async-work). Bounded, so a dead Redis never hangs a request.
 */
export function createEnqueuer(queues: Queues, logger: Logger) {
  // `log`: the caller's logger (a request's, so the line carries its request_id).
  return async (task: { id: string; kind: string }, log: Logger = logger): Promise<void> => {
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
