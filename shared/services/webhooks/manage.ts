import { and, count, desc, eq, type SQL } from "drizzle-orm";
import { secretAt } from "../../crypto/secrets.js";
import { webhookDeliveries, webhooks } from "../../db/schema/index.js";
import { Conflict, NotFound } from "../../errors.js";
import { isUuid } from "../../validation.js";
import type { ServiceContext } from "../context.js";
import { recordEvent } from "../events.js";
import { renderDelivery, renderWebhook } from "./render.js";
import type { CreateWebhookInput, ListDeliveriesQuery, ListWebhooksQuery, UpdateWebhookInput } from "./schemas.js";
import { newWebhookSecret } from "./signing.js";

/**
 * Webhook administration (docs/api.md#webhooks). The signing secret is generated here, encrypted
 * bound to its row (shared/crypto/secrets.ts) and returned only by create and rotate-secret;
 * events name the webhook and the receiver's host, never the URL's path or query (which may carry
 * a receiver's token) nor the secret.
 */

const WEBHOOK_NOT_FOUND = () => NotFound("webhook_not_found", "webhook not found");

const hostOf = (url: string) => new URL(url).host;

async function loadWebhook(ctx: ServiceContext, id: string) {
  if (!isUuid(id)) throw WEBHOOK_NOT_FOUND();
  const [row] = await ctx.db.select().from(webhooks).where(eq(webhooks.id, id.toLowerCase()));
  if (!row) throw WEBHOOK_NOT_FOUND();
  return row;
}

export async function createWebhook({ ctx, input }: { ctx: ServiceContext; input: CreateWebhookInput }) {
  const id = crypto.randomUUID();
  const secret = newWebhookSecret();
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .insert(webhooks)
      .values({
        id,
        url: input.url,
        description: input.description || null,
        eventTypes: input.event_types,
        enabled: input.enabled ?? true,
        secretEnc: ctx.secrets.encrypt(secret, secretAt.webhook(id)),
      })
      .returning();
    await recordEvent(tx, {
      type: "webhook.created",
      message: `webhook to ${hostOf(row!.url)} created`,
      actorId: ctx.actor?.id,
      metadata: { webhook_id: id, receiver_host: hostOf(row!.url), event_types: row!.eventTypes, enabled: row!.enabled },
    });
    return { webhook: renderWebhook(row!), secret };
  });
}

export async function listWebhooks({ ctx, query }: { ctx: ServiceContext; query: ListWebhooksQuery }) {
  const rows = await ctx.db.select().from(webhooks).orderBy(desc(webhooks.createdAt), desc(webhooks.id)).limit(query.limit).offset(query.offset);
  const [counted] = await ctx.db.select({ total: count() }).from(webhooks);
  return { webhooks: rows.map(renderWebhook), total: counted?.total ?? 0, limit: query.limit, offset: query.offset };
}

export async function getWebhook({ ctx, webhookId }: { ctx: ServiceContext; webhookId: string }) {
  return { webhook: renderWebhook(await loadWebhook(ctx, webhookId)) };
}

export async function updateWebhook({ ctx, webhookId, input }: { ctx: ServiceContext; webhookId: string; input: UpdateWebhookInput }) {
  if (!isUuid(webhookId)) throw WEBHOOK_NOT_FOUND();
  return ctx.db.transaction(async (tx) => {
    const [current] = await tx.select().from(webhooks).where(eq(webhooks.id, webhookId.toLowerCase())).for("update");
    if (!current) throw WEBHOOK_NOT_FOUND();
    const set: Partial<typeof webhooks.$inferInsert> = {};
    if (input.url !== undefined) set.url = input.url;
    if (input.event_types !== undefined) set.eventTypes = input.event_types;
    if (input.description !== undefined) set.description = input.description || null;
    if (input.enabled !== undefined) set.enabled = input.enabled;
    const changed = Object.keys(set).filter((k) => JSON.stringify(set[k as keyof typeof set]) !== JSON.stringify(current[k as keyof typeof current]));
    if (changed.length === 0) return { webhook: renderWebhook(current) };
    const [row] = await tx
      .update(webhooks)
      .set({ ...set, updatedAt: new Date() })
      .where(eq(webhooks.id, current.id))
      .returning();
    const fields = changed.map((k) => ({ url: "url", eventTypes: "event_types", description: "description", enabled: "enabled" })[k] ?? k);
    await recordEvent(tx, {
      type: "webhook.updated",
      message: `webhook to ${hostOf(row!.url)} updated (${fields.join(", ")})`,
      actorId: ctx.actor?.id,
      metadata: { webhook_id: row!.id, receiver_host: hostOf(row!.url), fields, event_types: row!.eventTypes, enabled: row!.enabled },
    });
    return { webhook: renderWebhook(row!) };
  });
}

/** Deletes the webhook and its delivery log (ON DELETE CASCADE); a delivery in flight finds no row and stops. */
export async function deleteWebhook({ ctx, webhookId }: { ctx: ServiceContext; webhookId: string }): Promise<void> {
  if (!isUuid(webhookId)) throw WEBHOOK_NOT_FOUND();
  await ctx.db.transaction(async (tx) => {
    const [row] = await tx.delete(webhooks).where(eq(webhooks.id, webhookId.toLowerCase())).returning();
    if (!row) throw WEBHOOK_NOT_FOUND();
    await recordEvent(tx, {
      type: "webhook.deleted",
      message: `webhook to ${hostOf(row.url)} deleted`,
      actorId: ctx.actor?.id,
      metadata: { webhook_id: row.id, receiver_host: hostOf(row.url) },
    });
  });
}

/** A new signing secret, returned this once; deliveries signed from the next attempt on use it. */
export async function rotateWebhookSecret({ ctx, webhookId }: { ctx: ServiceContext; webhookId: string }) {
  if (!isUuid(webhookId)) throw WEBHOOK_NOT_FOUND();
  const id = webhookId.toLowerCase();
  const secret = newWebhookSecret();
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .update(webhooks)
      .set({ secretEnc: ctx.secrets.encrypt(secret, secretAt.webhook(id)), updatedAt: new Date() })
      .where(eq(webhooks.id, id))
      .returning();
    if (!row) throw WEBHOOK_NOT_FOUND();
    await recordEvent(tx, {
      type: "webhook.secret_rotated",
      message: `signing secret of the webhook to ${hostOf(row.url)} rotated`,
      actorId: ctx.actor?.id,
      metadata: { webhook_id: row.id, receiver_host: hostOf(row.url) },
    });
    return { webhook: renderWebhook(row), secret };
  });
}

/**
 * "Send a test event": records a `webhook.tested` event and, in the same transaction, a delivery
 * of it to this webhook whatever its event types; the dispatcher queues it within
 * WEBHOOK_DISPATCH_INTERVAL_MS and it is delivered (and retried) like any other.
 */
export async function testWebhook({ ctx, webhookId }: { ctx: ServiceContext; webhookId: string }) {
  if (!isUuid(webhookId)) throw WEBHOOK_NOT_FOUND();
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx.select().from(webhooks).where(eq(webhooks.id, webhookId.toLowerCase())).for("share");
    if (!row) throw WEBHOOK_NOT_FOUND();
    if (!row.enabled) throw Conflict("webhook_disabled", "the webhook is disabled; enable it to send a test event");
    const eventId = await recordEvent(tx, {
      type: "webhook.tested",
      message: `test event sent to the webhook to ${hostOf(row.url)}`,
      actorId: ctx.actor?.id,
      metadata: { webhook_id: row.id, receiver_host: hostOf(row.url) },
    });
    const [delivery] = await tx.insert(webhookDeliveries).values({ webhookId: row.id, eventId, eventType: "webhook.tested" }).returning();
    return { delivery: renderDelivery(delivery!) };
  });
}

/** The delivery log of one webhook, newest first. */
export async function listDeliveries({ ctx, webhookId, query }: { ctx: ServiceContext; webhookId: string; query: ListDeliveriesQuery }) {
  const hook = await loadWebhook(ctx, webhookId);
  const conds: SQL[] = [eq(webhookDeliveries.webhookId, hook.id)];
  if (query.status) conds.push(eq(webhookDeliveries.status, query.status));
  const where = and(...conds);
  const rows = await ctx.db
    .select()
    .from(webhookDeliveries)
    .where(where)
    .orderBy(desc(webhookDeliveries.createdAt), desc(webhookDeliveries.id))
    .limit(query.limit)
    .offset(query.offset);
  const [counted] = await ctx.db.select({ total: count() }).from(webhookDeliveries).where(where);
  return { deliveries: rows.map(renderDelivery), total: counted?.total ?? 0, limit: query.limit, offset: query.offset };
}
