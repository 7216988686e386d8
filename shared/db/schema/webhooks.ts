import { sql } from "drizzle-orm";
import { boolean, check, index, integer, jsonb, pgTable, text, uuid } from "drizzle-orm/pg-core";
import { createdAt, id, ts, updatedAt } from "./columns.js";

export const deliveryStatuses = ["pending", "succeeded", "failed"] as const;

/** Signed HTTP webhooks for chosen event types (docs/api.md#webhooks). */
export const webhooks = pgTable("webhooks", {
  id: id(),
  url: text().notNull(),
  description: text(),
  /** Event types delivered; an entry ending in `.*` is a prefix (`egress.*`). */
  eventTypes: jsonb().$type<string[]>().notNull().default([]),
  /** The HMAC-SHA256 signing secret, encrypted (shared/crypto/secrets). */
  secretEnc: text().notNull(),
  enabled: boolean().notNull().default(true),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});

/** One row per (webhook, event): its attempts, last answer and state — the delivery log. */
export const webhookDeliveries = pgTable(
  "webhook_deliveries",
  {
    id: id(),
    webhookId: uuid()
      .notNull()
      .references(() => webhooks.id, { onDelete: "cascade" }),
    eventId: uuid().notNull(),
    eventType: text().notNull(),
    status: text({ enum: deliveryStatuses }).notNull().default("pending"),
    attempts: integer().notNull().default(0),
    responseStatus: integer(),
    error: text(),
    durationMs: integer(),
    createdAt: createdAt(),
    lastAttemptAt: ts(),
    nextAttemptAt: ts(),
  },
  (t) => [
    index("deliveries_webhook_idx").on(t.webhookId, t.createdAt.desc(), t.id.desc()),
    index("deliveries_event_idx").on(t.eventId),
    check("deliveries_status_ck", sql`${t.status} in ('pending','succeeded','failed')`),
  ],
);

export type WebhookRow = typeof webhooks.$inferSelect;
export type DeliveryRow = typeof webhookDeliveries.$inferSelect;
