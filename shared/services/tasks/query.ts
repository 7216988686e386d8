import { and, count, desc, eq, type SQL } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.js";
import { tasks, type TaskRow } from "../../db/schema/index.js";
import { NotFound } from "../../errors.js";
import { isUuid } from "../../validation.js";
import type { ServiceContext } from "../context.js";
import { renderTask } from "./render.js";
import type { ListTasksQuery } from "./schemas.js";

export async function listTasks({ ctx, query }: { ctx: ServiceContext; query: ListTasksQuery }) {
  const conds: SQL[] = [];
  if (query.status) conds.push(eq(tasks.status, query.status));
  if (query.kind) conds.push(eq(tasks.kind, query.kind));
  if (query.host_id) conds.push(eq(tasks.hostId, query.host_id));
  const where = conds.length ? and(...conds) : undefined;
  const rows = await ctx.db
    .select()
    .from(tasks)
    .where(where)
    .orderBy(desc(tasks.createdAt), desc(tasks.id))
    .limit(query.limit)
    .offset(query.offset);
  const [counted] = await ctx.db.select({ total: count() }).from(tasks).where(where);
  return {
    tasks: rows.map(renderTask),
    total: counted?.total ?? 0,
    limit: query.limit,
    offset: query.offset,
  };
}

/** A task row or 404 `task_not_found` (also for path ids that are not UUIDs, docs/api.md#validation). */
export async function findTask(db: DbOrTx, taskId: string, opts: { forUpdate?: boolean } = {}): Promise<TaskRow> {
  if (!isUuid(taskId)) throw NotFound("task_not_found", "task not found");
  const q = db.select().from(tasks).where(eq(tasks.id, taskId.toLowerCase()));
  const rows = opts.forUpdate ? await q.for("update") : await q;
  const row = rows[0];
  if (!row) throw NotFound("task_not_found", "task not found");
  return row;
}

export async function getTask({ ctx, taskId }: { ctx: ServiceContext; taskId: string }) {
  return { task: renderTask(await findTask(ctx.db, taskId)) };
}
