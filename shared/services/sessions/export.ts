import { and, asc, eq, gte, isNotNull, isNull, lt, type SQL, sql } from "drizzle-orm";
import { hosts, sessionRecordingChunks, sessions, users } from "../../db/schema/index.js";
import type { ServiceContext } from "../context.js";
import { EXPORT_BATCH, type ExportPager, pageOf } from "../export/keyset.js";
import type { ListSessionsQuery } from "./schemas.js";
import { renderSession, type SessionView } from "./view.js";

/**
 * `GET /v1/admin/sessions/export` (docs/api.md#export): the sessions matching the filters of
 * `GET /v1/admin/sessions` (its limit and offset are ignored), oldest first (started_at, then id),
 * one page per call, each the session object of the list.
 */
export function exportSessions({ ctx, query, batch = EXPORT_BATCH }: { ctx: ServiceContext; query: ListSessionsQuery; batch?: number }): ExportPager<SessionView> {
  const hasRecording = sql<boolean>`exists (select 1 from ${sessionRecordingChunks} where ${sessionRecordingChunks.sessionId} = ${sessions.id})`;
  const conds: SQL[] = [];
  if (query.user_id) conds.push(eq(sessions.userId, query.user_id));
  if (query.host_id) conds.push(eq(sessions.hostId, query.host_id));
  if (query.kind) conds.push(eq(sessions.kind, query.kind));
  if (query.since) conds.push(gte(sessions.startedAt, query.since));
  // Inclusive of its whole millisecond, as the list's `until`.
  if (query.until) conds.push(lt(sessions.startedAt, new Date(query.until.getTime() + 1)));
  if (query.open === true) conds.push(isNull(sessions.endedAt));
  if (query.open === false) conds.push(isNotNull(sessions.endedAt));
  if (query.recorded !== undefined) conds.push(query.recorded ? hasRecording : sql`not ${hasRecording}`);
  return async (after) => {
    const rows = await ctx.db
      .select({ row: sessions, username: users.username, hostShortId: hosts.shortId, hasRecording, at: sql<string>`${sessions.startedAt}::text`, id: sessions.id })
      .from(sessions)
      .leftJoin(users, eq(users.id, sessions.userId))
      .leftJoin(hosts, eq(hosts.id, sessions.hostId))
      .where(and(...conds, after ? sql`(${sessions.startedAt}, ${sessions.id}) > (${after.at}::timestamptz, ${after.id}::uuid)` : undefined))
      .orderBy(asc(sessions.startedAt), asc(sessions.id))
      .limit(batch);
    const now = ctx.clock();
    return pageOf(rows, batch, (r) => renderSession(r.row, r, now));
  };
}
