import { and, count, eq, type SQL } from "drizzle-orm";
import { hosts } from "../../db/schema/index.js";
import type { Pagination } from "../../validation.js";
import type { ServiceContext } from "../context.js";
import { loadHostRows, renderAdminHost, renderUserHost } from "./render.js";
import type { ListHostsQuery } from "./schemas.js";

export async function listHosts({ ctx, query }: { ctx: ServiceContext; query: ListHostsQuery }) {
  const conds: SQL[] = [];
  if (query.status) conds.push(eq(hosts.status, query.status));
  if (query.user_id) conds.push(eq(hosts.userId, query.user_id));
  const where = conds.length ? and(...conds) : undefined;
  const rows = await loadHostRows(ctx.db, where, query);
  const [counted] = await ctx.db.select({ total: count() }).from(hosts).where(where);
  return { hosts: rows.map(renderAdminHost), total: counted?.total ?? 0, limit: query.limit, offset: query.offset };
}

/** The caller's own hosts (0 or 1). */
export async function listOwnHosts({ ctx, page }: { ctx: ServiceContext; page: Pagination }) {
  const where = eq(hosts.userId, ctx.actor!.id);
  const rows = await loadHostRows(ctx.db, where, page);
  const [counted] = await ctx.db.select({ total: count() }).from(hosts).where(where);
  return { hosts: rows.map(renderUserHost), total: counted?.total ?? 0, limit: page.limit, offset: page.offset };
}
