import { and, count, desc, eq, gt, isNotNull, isNull, lte, or, type SQL } from "drizzle-orm";
import { users } from "../../db/schema/index.js";
import type { ServiceContext } from "../context.js";
import { renderUser } from "./render.js";
import type { ListUsersQuery } from "./schemas.js";

export async function listUsers({ ctx, query }: { ctx: ServiceContext; query: ListUsersQuery }) {
  const now = ctx.clock();
  const conds: (SQL | undefined)[] = [isNull(users.deletedAt)];
  if (query.role) conds.push(eq(users.role, query.role));
  const notExpired = or(isNull(users.expiresAt), gt(users.expiresAt, now));
  const expired = and(isNotNull(users.expiresAt), lte(users.expiresAt, now));
  if (query.status === "active") conds.push(eq(users.status, "active"), notExpired);
  if (query.status === "disabled") conds.push(eq(users.status, "disabled"));
  if (query.status === "expired") conds.push(eq(users.status, "active"), expired);
  const where = and(...conds);
  const rows = await ctx.db
    .select()
    .from(users)
    .where(where)
    .orderBy(desc(users.createdAt), desc(users.id))
    .limit(query.limit)
    .offset(query.offset);
  const [counted] = await ctx.db.select({ total: count() }).from(users).where(where);
  return {
    users: rows.map((u) => renderUser(u, now)),
    total: counted?.total ?? 0,
    limit: query.limit,
    offset: query.offset,
  };
}
