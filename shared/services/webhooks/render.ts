import type { DeliveryRow, WebhookRow } from "../../db/schema/webhooks.js";
import type { WebhookDeliveryView, WebhookView } from "../../views/webhooks.js";

/** The webhook object of docs/api.md#webhooks: never its secret. */
export function renderWebhook(w: WebhookRow): WebhookView {
  return {
    id: w.id,
    url: w.url,
    description: w.description,
    event_types: w.eventTypes,
    enabled: w.enabled,
    created_at: w.createdAt.toISOString(),
    updated_at: w.updatedAt.toISOString(),
  };
}

export function renderDelivery(d: DeliveryRow): WebhookDeliveryView {
  return {
    id: d.id,
    webhook_id: d.webhookId,
    event_id: d.eventId,
    event_type: d.eventType,
    status: d.status,
    attempts: d.attempts,
    response_status: d.responseStatus,
    error: d.error,
    duration_ms: d.durationMs,
    created_at: d.createdAt.toISOString(),
    last_attempt_at: d.lastAttemptAt?.toISOString() ?? null,
    next_attempt_at: d.nextAttemptAt?.toISOString() ?? null,
  };
}
