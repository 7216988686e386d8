import { and, inArray, lt } from "drizzle-orm";
import { events, tasks } from "../../shared/db/schema/index.js";
import { recordEvent } from "../../shared/services/events.js";
import type { WorkerDeps } from "../deps.js";

/** Daily: prune terminal tasks and events past their retention (docs/architecture.md#schedulers). */
export async function runRetention(deps: WorkerDeps): Promise<{ tasks: number; events: number }> {
  const now = deps.clock().getTime();
  const day = 86_400_000;
  const t = await deps.db
    .delete(tasks)
    .where(
      and(
        inArray(tasks.status, ["succeeded", "failed", "canceled"]),
        lt(tasks.createdAt, new Date(now - deps.config.TASK_RETENTION_DAYS * day)),
      ),
    )
    .returning({ id: tasks.id });
  const e = await deps.db
    .delete(events)
    .where(lt(events.createdAt, new Date(now - deps.config.EVENT_RETENTION_DAYS * day)))
    .returning({ id: events.id });
  if (t.length || e.length) {
    await recordEvent(deps.db, {
      type: "retention.pruned",
      message: `pruned ${t.length} tasks and ${e.length} events`,
      metadata: { tasks: t.length, events: e.length },
    });
  }
  return { tasks: t.length, events: e.length };
}
