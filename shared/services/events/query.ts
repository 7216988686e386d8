import { and, count, desc, eq, gte, like, lt, type SQL } from "drizzle-orm";
import { events, type EventRow } from "../../db/schema/index.js";
import type { ServiceContext } from "../context.js";
import type { EventView } from "../../views/index.js";
import type { EventFilters, ListEventsQuery } from "./schemas.js";

/** The event object of docs/api.md#events. */
export function renderEvent(e: EventRow): EventView {
  return {
    id: e.id,
    type: e.type,
    level: e.level,
    message: e.message,
    actor_id: e.actorId,
    user_id: e.userId,
    host_id: e.hostId,
    task_id: e.taskId,
    metadata: e.metadata ?? {},
    created_at: e.createdAt.toISOString(),
  };
}
export type { EventView };

/** `host.*` → `LIKE 'host.%'`; `%`, `_` and `\` in the prefix match themselves only. */
const likePrefix = (prefix: string) => `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/** The WHERE of the event filters (docs/api.md#events): the list and its NDJSON export. */
export function eventFilterConditions(query: EventFilters): SQL[] {
  const conds: SQL[] = [];
  if (query.type !== undefined) {
    conds.push(
      query.type.endsWith(".*") ? like(events.type, likePrefix(query.type.slice(0, -1))) : eq(events.type, query.type),
    );
  }
  if (query.level) conds.push(eq(events.level, query.level));
  if (query.user_id) conds.push(eq(events.userId, query.user_id));
  if (query.host_id) conds.push(eq(events.hostId, query.host_id));
  if (query.since) conds.push(gte(events.createdAt, query.since));
  // Stored timestamps have microseconds, but clients only ever see (and send back) milliseconds:
  // `until` includes its whole millisecond, so an event is found by its own displayed created_at.
  if (query.until) conds.push(lt(events.createdAt, new Date(query.until.getTime() + 1)));
  return conds;
}

/** `GET /v1/admin/events` (docs/api.md#events), newest first. */
export async function listEvents({ ctx, query }: { ctx: ServiceContext; query: ListEventsQuery }) {
  const conds = eventFilterConditions(query);
  const where = conds.length ? and(...conds) : undefined;
  const rows = await ctx.db
    .select()
    .from(events)
    .where(where)
    .orderBy(desc(events.createdAt), desc(events.id))
    .limit(query.limit)
    .offset(query.offset);
  const [counted] = await ctx.db.select({ total: count() }).from(events).where(where);
  return {
    events: rows.map(renderEvent),
    total: counted?.total ?? 0,
    limit: query.limit,
    offset: query.offset,
  };
}
