import type { Pagination } from "../../validation.js";
import type { ServiceContext } from "../context.js";
import type { HostListCache } from "./list-cache.js";
import { checkHostListPage, listHostViewRows } from "./read-queries.js";
import { renderAdminHost, renderUserHost } from "./render.js";
import type { ListHostsQuery } from "./schemas.js";

/** GET /v1/admin/hosts, rendered from the rows (docs/api.md#hosts). */
export async function listHosts({ ctx, query }: { ctx: ServiceContext; query: ListHostsQuery }) {
  const { rows, total } = await listHostViewRows(ctx.db, { status: query.status, userId: query.user_id }, query);
  return { hosts: rows.map(renderAdminHost), total, limit: query.limit, offset: query.offset };
}

/**
 * The same answer as `listHosts`, as UTF-8 JSON, from `cache` when what this request reads from
 * Postgres proves a stored body current (docs/architecture.md#read-paths): a hit is byte-for-byte
 * what rendering in this request's snapshot would give.
 */
export async function listHostsJson({
  ctx,
  query,
  cache,
}: {
  ctx: ServiceContext;
  query: ListHostsQuery;
  cache: HostListCache;
}): Promise<Uint8Array> {
  const filter = { status: query.status, userId: query.user_id };
  const key = JSON.stringify([query.status ?? null, query.user_id ?? null, query.limit, query.offset]);
  const now = ctx.clock().getTime();
  const stored = cache.entry(key, now);
  if (stored) {
    const body = cache.serve(stored, await checkHostListPage(ctx.db, filter, query, stored.snapshot));
    if (body !== undefined) return body;
  }
  // Rows, stamp and snapshot come from one statement, so they describe the same state.
  const { rows, total, stamp, snapshot } = await listHostViewRows(ctx.db, filter, query);
  const body = Buffer.from(JSON.stringify({ hosts: rows.map(renderAdminHost), total, limit: query.limit, offset: query.offset }));
  cache.set(key, { stamp, snapshot, body }, now);
  return body;
}

/** The caller's own hosts (0 or 1). */
export async function listOwnHosts({ ctx, page }: { ctx: ServiceContext; page: Pagination }) {
  const { rows, total } = await listHostViewRows(ctx.db, { userId: ctx.actor!.id }, page);
  return { hosts: rows.map(renderUserHost), total, limit: page.limit, offset: page.offset };
}
