import { and, asc, sql } from "drizzle-orm";
import { z } from "zod";
import { events, type EventRow } from "../../db/schema/index.js";
import type { EventView } from "../../views/index.js";
import type { ServiceContext } from "../context.js";
import { EXPORT_BATCH, type ExportPager, pageOf } from "../export/keyset.js";
import { eventFilterConditions, renderEvent } from "./query.js";
import { eventFilterShape, sinceNotAfterUntil } from "./schemas.js";

/** `GET /v1/admin/events/export`: the filters of the list (docs/api.md#events), no pagination. */
export const exportEventsQuery = z.object(eventFilterShape).superRefine(sinceNotAfterUntil);
export type ExportEventsQuery = z.output<typeof exportEventsQuery>;

/**
 * The events matching the filters, oldest first (created_at, then id), one page per call
 * (docs/api.md#export). Each object is the event object of the list.
 */
export function exportEvents({ ctx, query, batch = EXPORT_BATCH }: { ctx: ServiceContext; query: ExportEventsQuery; batch?: number }): ExportPager<EventView> {
  const filters = eventFilterConditions(query);
  return async (after) => {
    const rows = await ctx.db
      .select({ row: events, at: sql<string>`${events.createdAt}::text`, id: events.id })
      .from(events)
      .where(and(...filters, after ? sql`(${events.createdAt}, ${events.id}) > (${after.at}::timestamptz, ${after.id}::uuid)` : undefined))
      .orderBy(asc(events.createdAt), asc(events.id))
      .limit(batch);
    return pageOf(rows, batch, (r: { row: EventRow }) => renderEvent(r.row));
  };
}
