import { z } from "zod";

/**
 * The webhook objects of docs/api.md#webhooks (README "API reference and response contract": one
 * zod schema per object the API returns; the UI imports the types, type-only). The signing secret
 * is never part of a webhook object: only the create and rotate answers carry it, once.
 */

const uuid = z.string().uuid();
const timestamp = z.string();

export const webhookView = z.object({
  id: uuid,
  url: z.string(),
  description: z.string().nullable(),
  /** Exact event types, or prefixes ending in `.*` (`egress.*`). */
  event_types: z.array(z.string()),
  enabled: z.boolean(),
  created_at: timestamp,
  updated_at: timestamp,
});
export type WebhookView = z.output<typeof webhookView>;

/** POST /v1/admin/webhooks and …/rotate-secret: the webhook and its signing secret, shown this once. */
export const webhookWithSecretView = z.object({ webhook: webhookView, secret: z.string() });
export type WebhookWithSecretView = z.output<typeof webhookWithSecretView>;

/** One row of the delivery log: one (webhook, event) pair, its attempts and last answer. */
export const webhookDeliveryView = z.object({
  id: uuid,
  webhook_id: uuid,
  event_id: uuid,
  event_type: z.string(),
  status: z.enum(["pending", "succeeded", "failed"]),
  attempts: z.number().int(),
  /** The HTTP status of the last attempt; null when it got no answer (timeout, refused) or none was made. */
  response_status: z.number().int().nullable(),
  /** Why the last attempt failed (`http_500`, `timeout`, `connection refused`…); null after a success. */
  error: z.string().nullable(),
  duration_ms: z.number().int().nullable(),
  created_at: timestamp,
  last_attempt_at: timestamp.nullable(),
  /** When the next retry is due (pending after a failed attempt); null otherwise. */
  next_attempt_at: timestamp.nullable(),
});
export type WebhookDeliveryView = z.output<typeof webhookDeliveryView>;
