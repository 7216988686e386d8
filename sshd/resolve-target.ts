import { and, eq, isNull, ne } from "drizzle-orm";
import type { Db } from "../shared/db/client.js";
import { hosts, users, type HostRow, type UserRow } from "../shared/db/schema/index.js";

export interface Target {
  host: HostRow;
  owner: UserRow;
}

const SHORT_ID = /^[a-z0-9]{6}$/;

/**
 * Login name → host (docs/architecture.md#ssh-proxy): a short id first; otherwise (or when no host matches) a
 * username whose owner has exactly one host that is not being deleted. No match → null, and every
 * credential then simply fails (no oracle).
 */
export async function resolveTarget(db: Db, login: string): Promise<Target | null> {
  const name = login.replace(/[A-Z]/g, (c) => c.toLowerCase());
  if (SHORT_ID.test(name)) {
    const [row] = await db
      .select({ host: hosts, owner: users })
      .from(hosts)
      .innerJoin(users, eq(users.id, hosts.userId))
      .where(eq(hosts.shortId, name));
    if (row && !row.owner.deletedAt) return row;
  }
  if (name.length > 50) return null;
  const rows = await db
    .select({ host: hosts, owner: users })
    .from(users)
    .innerJoin(hosts, eq(hosts.userId, users.id))
    .where(and(eq(users.username, name), isNull(users.deletedAt), ne(hosts.status, "deleting")));
  return rows.length === 1 ? rows[0]! : null;
}
