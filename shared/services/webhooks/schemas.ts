import { z } from "zod";
import { CONTROL_CHARS, freeTextField, paginationShape } from "../../validation.js";

/** Webhook request validation (docs/api.md#webhooks). */

const MAX_URL = 2048;

/**
 * The destination: http or https only, no user name or password in it (a credential in a URL ends
 * up in logs and answers; the receiver authenticates us by the signature instead), no fragment.
 * Any host is allowed, private addresses included: the admin chooses where events go
 * (docs/api.md#webhooks-ssrf).
 */
export const webhookUrlField = z.string().superRefine((v, ctx) => {
  const fail = (message: string) => ctx.addIssue({ code: "custom", message });
  if (v.length < 1 || v.length > MAX_URL) return fail(`must be 1-${MAX_URL} characters`);
  if (CONTROL_CHARS.test(v) || /\s/.test(v)) return fail("must not contain spaces or control characters");
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return fail("must be an absolute http(s) URL");
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return fail("must be an http or https URL");
  if (u.username || u.password) return fail("must not contain credentials (user:password@)");
  if (!u.hostname) return fail("must name a host");
  if (u.hash) return fail("must not contain a fragment");
});

/** `host.created`, `egress.*` (a prefix), or `*` (every event). */
const EVENT_TYPE = /^(\*|[a-z0-9_-]+(\.[a-z0-9_-]+)*(\.\*)?)$/;

export const eventTypesField = z
  .array(
    z
      .string()
      .max(100, { message: "must be at most 100 characters" })
      .refine((v) => EVENT_TYPE.test(v), { message: "must be an event type (host.created), a prefix ending in .* (egress.*) or *" }),
  )
  .min(1, { message: "must name at least one event type" })
  .max(50, { message: "must name at most 50 event types" })
  .transform((v) => [...new Set(v)]);

export const createWebhookInput = z.strictObject({
  url: webhookUrlField,
  event_types: eventTypesField,
  description: freeTextField(0, 200).nullable().optional(),
  enabled: z.boolean().optional(),
});
export type CreateWebhookInput = z.output<typeof createWebhookInput>;

/** Only the fields present change. */
export const updateWebhookInput = z.strictObject({
  url: webhookUrlField.optional(),
  event_types: eventTypesField.optional(),
  description: freeTextField(0, 200).nullable().optional(),
  enabled: z.boolean().optional(),
});
export type UpdateWebhookInput = z.output<typeof updateWebhookInput>;

export const listWebhooksQuery = z.object({ ...paginationShape });
export type ListWebhooksQuery = z.output<typeof listWebhooksQuery>;

export const listDeliveriesQuery = z.object({
  ...paginationShape,
  status: z.enum(["pending", "succeeded", "failed"]).optional(),
});
export type ListDeliveriesQuery = z.output<typeof listDeliveriesQuery>;
