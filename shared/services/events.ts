import type { DbOrTx } from "../db/client.js";
import { events } from "../db/schema/index.js";

export interface EventInput {
  type: string;
  level?: "info" | "warn" | "error";
  message: string;
  actorId?: string | null;
  userId?: string | null;
  hostId?: string | null;
  taskId?: string | null;
  metadata?: Record<string, unknown>;
}

const MAX_USER_STRING = 100;

/** User-supplied strings in metadata are truncated (docs/api.md#events). Callers never pass secrets. */
function truncateStrings(meta: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(meta)) {
    // Cut between whole code points: half a surrogate pair is invalid JSON for Postgres.
    out[k] = typeof v === "string" && [...v].length > MAX_USER_STRING ? [...v].slice(0, MAX_USER_STRING).join("") : v;
  }
  return out;
}

/** Write one audit event; pass the transaction of the change it describes. Returns its id. */
export async function recordEvent(db: DbOrTx, e: EventInput): Promise<string> {
  const [row] = await db.insert(events).values({
    type: e.type,
    level: e.level ?? "info",
    message: e.message,
    actorId: e.actorId ?? null,
    userId: e.userId ?? null,
    hostId: e.hostId ?? null,
    taskId: e.taskId ?? null,
    metadata: truncateStrings(e.metadata ?? {}),
  }).returning({ id: events.id });
  return row!.id;
}
