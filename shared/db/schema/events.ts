import { sql } from "drizzle-orm";
import { check, index, jsonb, pgTable, text, uuid } from "drizzle-orm/pg-core";
import { createdAt, id } from "./columns.js";

export const eventLevels = ["info", "warn", "error"] as const;

/** The audit trail. No foreign keys, so events survive what they describe (docs/api.md#events). */
export const events = pgTable(
  "events",
  {
    id: id(),
    type: text().notNull(),
    level: text({ enum: eventLevels }).notNull().default("info"),
    message: text().notNull(),
    actorId: uuid(),
    userId: uuid(),
    hostId: uuid(),
    taskId: uuid(),
    metadata: jsonb().$type<Record<string, unknown>>().notNull().default({}),
    createdAt: createdAt(),
  },
  (t) => [
    index("events_created_at_idx").on(t.createdAt.desc(), t.id.desc()),
    index("events_user_idx").on(t.userId, t.createdAt.desc()),
    index("events_host_idx").on(t.hostId, t.createdAt.desc()),
    index("events_type_idx").on(t.type),
    check("events_level_ck", sql`${t.level} in ('info','warn','error')`),
  ],
);

export type EventRow = typeof events.$inferSelect;
