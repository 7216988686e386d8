import { z } from "zod";
import { eventLevels } from "../../db/schema/index.js";
import { paginationShape, timestampField, uuidField } from "../../validation.js";

/** The filters of the event list, shared by its NDJSON export (docs/api.md#export). */
export const eventFilterShape = {
  // Exact type, or a prefix ending in `.*` (`host.*`) (docs/api.md#events).
  type: z
    .string()
    .min(1, { message: "must not be empty" })
    .max(100, { message: "must be at most 100 characters" })
    .optional(),
  level: z.enum(eventLevels).optional(),
  user_id: uuidField.optional(),
  host_id: uuidField.optional(),
  since: timestampField.optional(),
  until: timestampField.optional(),
};

export const sinceNotAfterUntil = (q: { since?: Date; until?: Date }, ctx: z.RefinementCtx) => {
  if (q.since && q.until && q.since.getTime() > q.until.getTime()) {
    ctx.addIssue({ code: "custom", path: ["since"], message: "must not be after until" });
  }
};

export const listEventsQuery = z
  .object({
    ...paginationShape,
    ...eventFilterShape,
  })
  .superRefine(sinceNotAfterUntil);
export type ListEventsQuery = z.output<typeof listEventsQuery>;
export type EventFilters = Omit<ListEventsQuery, "limit" | "offset">;
