import { gt, inArray, or, sql } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.js";
import { hosts, tasks, type TaskRow } from "../../db/schema/index.js";

/**
 * What the live-update streams (GET /v1/admin/sse, /v1/user/sse) are built from. Neither table
 * has a change log, so the API polls: every host's status (one small row per user), and the
 * tasks that can have changed since the previous poll.
 */

export interface HostState {
  id: string;
  userId: string;
  shortId: string;
  status: (typeof hosts.$inferSelect)["status"];
  desiredState: (typeof hosts.$inferSelect)["desiredState"];
  updatedAt: Date;
}

/** Every host's lifecycle columns. One host per user bounds this (docs/api.md#hosts-lifecycle). */
export async function loadHostStates(db: DbOrTx): Promise<HostState[]> {
  return db
    .select({
      id: hosts.id,
      userId: hosts.userId,
      shortId: hosts.shortId,
      status: hosts.status,
      desiredState: hosts.desiredState,
      updatedAt: hosts.updatedAt,
    })
    .from(hosts);
}

/**
 * A task created this recently is read again on every poll even when already terminal: its row
 * is stamped with the inserting transaction's start time and becomes visible only at commit, so
 * a plain `created_at > last poll` cursor could step over it. 30 s is far longer than any
 * transaction that inserts a task.
 */
export const RECENT_TASK_WINDOW_SECONDS = 30;

/**
 * Tasks that may have changed since the previous poll: every unfinished task, every task that
 * was unfinished at the previous poll (`previouslyActive`, so that its final transition is
 * seen even when it finished between two polls), and every recently created task. Terminal
 * states never change (docs/api.md#task-object), so nothing else can have moved.
 */
export async function loadTaskChanges(db: DbOrTx, previouslyActive: string[]): Promise<TaskRow[]> {
  const conds = [
    inArray(tasks.status, ["pending", "running"]),
    gt(tasks.createdAt, sql`now() - make_interval(secs => ${RECENT_TASK_WINDOW_SECONDS})`),
  ];
  if (previouslyActive.length) conds.push(inArray(tasks.id, previouslyActive));
  return db.select().from(tasks).where(or(...conds));
}
