import { and, eq, isNull } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.js";
import { users, type UserRow } from "../../db/schema/index.js";
import { NotFound } from "../../errors.js";
import { isUuid } from "../../validation.js";

/** A user that is not deleted, or a 404 `user_not_found` (also for ids that are not UUIDs). */
export async function getLiveUser(db: DbOrTx, id: string, opts: { forUpdate?: boolean } = {}): Promise<UserRow> {
  if (!isUuid(id)) throw NotFound("user_not_found", "user not found");
  const q = db
    .select()
    .from(users)
    .where(and(eq(users.id, id.toLowerCase()), isNull(users.deletedAt)));
  const rows = opts.forUpdate ? await q.for("update") : await q;
  const row = rows[0];
  if (!row) throw NotFound("user_not_found", "user not found");
  return row;
}

export async function findLiveUserByUsername(db: DbOrTx, username: string): Promise<UserRow | undefined> {
  const rows = await db
    .select()
    .from(users)
    .where(and(eq(users.username, username), isNull(users.deletedAt)));
  return rows[0];
}
