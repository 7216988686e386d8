import { isDeepStrictEqual } from "node:util";
import { and, count, desc, eq, inArray } from "drizzle-orm";
import type { Tx } from "../../db/client.js";
import { tasks, type TaskRow } from "../../db/schema/index.js";
import { ServiceError } from "../../errors.js";
import { insertTask, type NewTask } from "./create.js";

/**
 * Kinds that read the host's current state when they run (its keys), so one pending task anywhere
 * in the host's queue already covers every change committed before it starts.
 */
const READS_STATE_AT_RUN: ReadonlySet<string> = new Set(["host.sync-keys"]);

export const TooManyTasks = (max: number) =>
  new ServiceError("rate_limited", "too_many_tasks", `this host already has ${max} tasks waiting; wait for them to finish`, {
    retryAfterSeconds: 5,
  });

/**
 * A requested task for a host (issue 10 §2, task floods): a request that repeats what is already
 * waiting gets the waiting task back (`created: false`, same id: the caller answers 202 with it),
 * and a host whose queue is full answers 429 `too_many_tasks` instead of growing it.
 *
 * "Already waiting" is the newest unfinished task of the host being a pending one of the same
 * kind and payload — only the tail: a `stop` behind a pending `start` is not the same as the
 * `stop` before it. Kinds that read state at run time (sync-keys) match any pending one.
 *
 * The caller holds the host row lock (FOR UPDATE), so concurrent requests see each other's rows.
 * System tasks (reconcile, expiry, deletion) are never capped: they go through insertTask.
 */
export async function requestHostTask(
  tx: Tx,
  t: NewTask & { hostId: string },
  maxPending: number,
): Promise<{ task: TaskRow; created: boolean }> {
  const payload = t.payload ?? {};
  const unfinished = and(eq(tasks.hostId, t.hostId), inArray(tasks.status, ["pending", "running"]));
  const [same] = READS_STATE_AT_RUN.has(t.kind)
    ? await tx
        .select()
        .from(tasks)
        .where(and(eq(tasks.hostId, t.hostId), eq(tasks.status, "pending"), eq(tasks.kind, t.kind)))
        .limit(1)
    : (
        await tx.select().from(tasks).where(unfinished).orderBy(desc(tasks.createdAt), desc(tasks.id)).limit(1)
      ).filter((tail) => tail.status === "pending" && tail.kind === t.kind && isDeepStrictEqual(tail.payload, payload));
  if (same) return { task: same, created: false };
  const [pending] = await tx
    .select({ n: count() })
    .from(tasks)
    .where(and(eq(tasks.hostId, t.hostId), eq(tasks.status, "pending")));
  if ((pending?.n ?? 0) >= maxPending) throw TooManyTasks(maxPending);
  return { task: await insertTask(tx, t), created: true };
}
