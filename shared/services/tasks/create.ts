import { sql } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.js";
import { tasks, type TaskRow } from "../../db/schema/index.js";
import type { TaskKind } from "../../queue/contracts.js";

export interface NewTask {
  kind: TaskKind;
  hostId?: string | null;
  egressIpId?: string | null;
  /** A user id, or `system:<reason>`. */
  requestedBy: string;
  origin?: "api" | "bootstrap" | "entry" | "system";
  payload?: Record<string, unknown>;
  /** For the audit trail: the owner the task concerns. */
  userId?: string | null;
  /** The request that asked for it (ServiceContext.requestId): the worker's log lines for the task carry it. */
  requestId?: string | null;
}

/**
 * Insert a `pending` task in the caller's transaction (the same one as the domain change it
 * realises). The caller enqueues it after commit; if that fails, the sweeper does (docs/architecture.md#async-work).
 */
export async function insertTask(tx: DbOrTx, t: NewTask): Promise<TaskRow> {
  const [row] = await tx
    .insert(tasks)
    .values({
      kind: t.kind,
      hostId: t.hostId ?? null,
      egressIpId: t.egressIpId ?? null,
      // A host task runs on its host's engine's queue (docs/engines.md#queues), read in the same statement.
      engineId: t.hostId && t.kind.startsWith("host.") ? sql`(select engine_id from hosts where id = ${t.hostId})` : null,
      requestedBy: t.requestedBy,
      origin: t.origin ?? "api",
      payload: t.payload ?? {},
      requestId: t.requestId ?? null,
    })
    .returning();
  return row!;
}

