import { and, asc, eq } from "drizzle-orm";
import type { Db } from "../db/client.js";
import { tasks } from "../db/schema/index.js";
import type { Logger } from "../logger.js";
import { isJobName, queueOf } from "./contracts.js";
import type { Queues, TaskRef } from "./queues.js";

/**
 * Hand a host's turn to its next task (issue 10 §2, task floods). A job whose host is busy is
 * parked as a delayed job with a long safety-net delay (worker/tasks/runner.ts, TASK_WAIT_RECHECK_SECONDS)
 * instead of looking again every second; whoever ends a task of the host — the worker when a task
 * finishes, the API when a pending task is canceled, the sweeper when one goes stale — calls this
 * after the host lock is released, and the oldest pending task's job is promoted at once.
 *
 * One indexed query and one Redis round trip per finished task, however many tasks wait. A wake
 * that finds the job not delayed (still waiting, or active) does nothing: an active job re-checks
 * after parking itself, so a wake that races with it is never lost.
 */
export function createHostWaker(db: Db, queues: Queues, logger: Logger) {
  // `log`: the caller's logger (a request's, so the line carries its request_id).
  return async (hostId: string, log: Logger = logger): Promise<void> => {
    try {
      const [next] = await db
        .select({ id: tasks.id, kind: tasks.kind, engineId: tasks.engineId })
        .from(tasks)
        .where(and(eq(tasks.hostId, hostId), eq(tasks.status, "pending")))
        .orderBy(asc(tasks.createdAt), asc(tasks.id))
        .limit(1);
      if (!next || !isJobName(next.kind)) return;
      await promoteJob(queues, next);
    } catch (err) {
      // Best effort: the parked job looks again after its safety-net delay.
      log.warn({ host_id: hostId, err: (err as Error).message }, "could not wake the host's next task");
    }
  };
}

/** Promote a task's job if it is delayed; anything else (waiting, active, gone) is left alone. */
export async function promoteJob(queues: Queues, task: TaskRef): Promise<boolean> {
  if (!isJobName(task.kind)) return false;
  const job = await queues.get(queueOf(task.kind, task.engineId)).getJob(task.id);
  if (!job) return false;
  try {
    await job.promote();
    return true;
  } catch {
    return false; // not delayed (any more): nothing to do
  }
}
