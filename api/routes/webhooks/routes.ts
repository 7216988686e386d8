import { z } from "zod";
import {
  createWebhook,
  deleteWebhook,
  getWebhook,
  listDeliveries,
  listWebhooks,
  rotateWebhookSecret,
  testWebhook,
  updateWebhook,
} from "../../../shared/services/webhooks/manage.js";
import {
  createWebhookInput,
  listDeliveriesQuery,
  listWebhooksQuery,
  updateWebhookInput,
} from "../../../shared/services/webhooks/schemas.js";
import { webhookDeliveryView, webhookView, webhookWithSecretView } from "../../../shared/views/webhooks.js";
import { json, noContent } from "../../http/reply.js";
import { type AnyRoute, defineRoute } from "../../http/route.js";
import { jsonDoc, listDoc, std } from "../docs.js";

/**
 * Signed webhooks for chosen event types (docs/api.md#webhooks), admin only. The signing secret
 * appears in two answers only: create and rotate-secret.
 */
const tags = ["webhooks"];
const one = jsonDoc("Webhook", z.object({ webhook: webhookView }));
const withSecret = (d: string) => jsonDoc(d, webhookWithSecretView);

export const webhookRoutes: AnyRoute[] = [
  defineRoute({
    method: "post",
    path: "/v1/admin/webhooks",
    access: "admin",
    summary: "Create a webhook (the signing secret is in this answer only)",
    tags,
    body: createWebhookInput,
    responses: { 201: withSecret("Created; `secret` is shown this once"), 400: std[400], 401: std[401], 403: std[403], 413: std[413] },
    handler: async ({ c, ctx, body }) => json(c, 201, await createWebhook({ ctx, input: body })),
  }),
  defineRoute({
    method: "get",
    path: "/v1/admin/webhooks",
    access: "admin",
    summary: "List webhooks (newest first)",
    tags,
    query: listWebhooksQuery,
    responses: { 200: jsonDoc("Webhooks", listDoc("webhooks", webhookView)), 400: std[400], 401: std[401], 403: std[403] },
    handler: async ({ c, ctx, query }) => json(c, 200, await listWebhooks({ ctx, query })),
  }),
  defineRoute({
    method: "get",
    path: "/v1/admin/webhooks/{webhookID}",
    access: "admin",
    summary: "Get a webhook",
    tags,
    responses: { 200: one, 401: std[401], 403: std[403], 404: std[404] },
    handler: async ({ c, ctx, params }) => json(c, 200, await getWebhook({ ctx, webhookId: params.webhookID! })),
  }),
  defineRoute({
    method: "patch",
    path: "/v1/admin/webhooks/{webhookID}",
    access: "admin",
    summary: "Update a webhook's url, event_types, description or enabled (only the fields given)",
    tags,
    body: updateWebhookInput,
    responses: { 200: one, 400: std[400], 401: std[401], 403: std[403], 404: std[404], 413: std[413] },
    handler: async ({ c, ctx, params, body }) => json(c, 200, await updateWebhook({ ctx, webhookId: params.webhookID!, input: body })),
  }),
  defineRoute({
    method: "delete",
    path: "/v1/admin/webhooks/{webhookID}",
    access: "admin",
    summary: "Delete a webhook and its delivery log",
    tags,
    responses: { 204: { description: "Deleted" }, 401: std[401], 403: std[403], 404: std[404] },
    handler: async ({ c, ctx, params }) => {
      await deleteWebhook({ ctx, webhookId: params.webhookID! });
      return noContent(c);
    },
  }),
  defineRoute({
    method: "post",
    path: "/v1/admin/webhooks/{webhookID}/rotate-secret",
    access: "admin",
    summary: "Replace the signing secret (the new one is in this answer only)",
    tags,
    responses: { 200: withSecret("Rotated; `secret` is shown this once"), 401: std[401], 403: std[403], 404: std[404] },
    handler: async ({ c, ctx, params }) => json(c, 200, await rotateWebhookSecret({ ctx, webhookId: params.webhookID! })),
  }),
  defineRoute({
    method: "post",
    path: "/v1/admin/webhooks/{webhookID}/test",
    access: "admin",
    summary: "Send a test event (webhook.tested) to this webhook",
    tags,
    responses: {
      202: jsonDoc("Queued: the delivery of the test event", z.object({ delivery: webhookDeliveryView })),
      401: std[401],
      403: std[403],
      404: std[404],
      409: { ...std[409], description: "webhook_disabled" },
    },
    handler: async ({ c, ctx, params }) => json(c, 202, await testWebhook({ ctx, webhookId: params.webhookID! })),
  }),
  defineRoute({
    method: "get",
    path: "/v1/admin/webhooks/{webhookID}/deliveries",
    access: "admin",
    summary: "The delivery log of a webhook (newest first; filter: status)",
    tags,
    query: listDeliveriesQuery,
    responses: { 200: jsonDoc("Deliveries", listDoc("deliveries", webhookDeliveryView)), 400: std[400], 401: std[401], 403: std[403], 404: std[404] },
    handler: async ({ c, ctx, params, query }) => json(c, 200, await listDeliveries({ ctx, webhookId: params.webhookID!, query })),
  }),
];
