import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import type { Job } from "bullmq";
import { and, eq, sql } from "drizzle-orm";
import { secretAt } from "../../shared/crypto/secrets.js";
import { events, webhookDeliveries, webhooks } from "../../shared/db/schema/index.js";
import { renderEvent } from "../../shared/services/events/query.js";
import {
  DELIVERY_HEADER,
  EVENT_TYPE_HEADER,
  SIGNATURE_HEADER,
  signPayload,
  TIMESTAMP_HEADER,
  WEBHOOK_HEADER,
} from "../../shared/services/webhooks/signing.js";
import type { WorkerDeps } from "../deps.js";

/**
 * One attempt of one webhook delivery (docs/api.md#webhooks-delivery): POST the event object,
 * signed, to the webhook's current URL. 2xx = succeeded. Anything else (another status, a redirect
 * — never followed —, a timeout, a refused connection) is recorded on the row and thrown, so
 * BullMQ retries it with its exponential back-off; the last attempt's failure marks the row
 * `failed`. Each attempt writes its status code, error and duration on the row.
 *
 * Postgres decides, BullMQ only delivers: a row that is no longer `pending` (or no longer exists:
 * the webhook was deleted) is not sent again. At least once: a worker killed between the answer
 * and the row update sends the attempt again; receivers dedupe by X-CCP-Delivery.
 */

class DeliveryAttemptFailed extends Error {
  constructor(readonly reason: string) {
    super(`webhook delivery attempt failed: ${reason}`);
    this.name = "DeliveryAttemptFailed";
  }
}

class DeliveryTimeout extends Error {}

/** Why a request got no answer, without the URL (it may carry a receiver's token). */
function describeFailure(err: unknown): string {
  if (err instanceof DeliveryTimeout) return "timeout";
  const code = (err as { code?: unknown })?.code;
  if (typeof code === "string" && /^[A-Z0-9_]{2,40}$/.test(code)) return `connection_error (${code})`;
  return "connection_error";
}

/**
 * One POST with node:http(s), answering the status code. Not fetch: fetch refuses the Fetch
 * standard's "bad ports" (25, 6000, 6665–6669…), which an admin's receiver may well use. Redirects
 * are not followed (node:http never does); the whole exchange up to the status line has
 * `timeoutMs`; the answer's body is not read (the socket is dropped). TLS is verified against
 * Node's CA store.
 */
function postOnce(url: string, headers: Record<string, string>, body: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = (u.protocol === "https:" ? httpsRequest : httpRequest)(
      u,
      { method: "POST", headers: { ...headers, "content-length": String(Buffer.byteLength(body)) } },
      (res) => {
        clearTimeout(timer);
        res.destroy();
        resolve(res.statusCode ?? 0);
      },
    );
    const timer = setTimeout(() => req.destroy(new DeliveryTimeout("timeout")), timeoutMs);
    req.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(body);
  });
}

export async function deliverWebhook(deps: WorkerDeps, job: Job<{ deliveryId: string }>): Promise<void> {
  const { deliveryId } = job.data;
  const [row] = await deps.db
    .select({ delivery: webhookDeliveries, hook: webhooks })
    .from(webhookDeliveries)
    .innerJoin(webhooks, eq(webhooks.id, webhookDeliveries.webhookId))
    .where(eq(webhookDeliveries.id, deliveryId));
  if (!row || row.delivery.status !== "pending") return;
  const { delivery, hook } = row;
  const log = deps.logger.child({ webhook_id: hook.id, delivery_id: delivery.id, event_type: delivery.eventType });

  const finish = async (values: Partial<typeof webhookDeliveries.$inferInsert>) => {
    await deps.db
      .update(webhookDeliveries)
      .set({ ...values, attempts: sql`${webhookDeliveries.attempts} + 1`, lastAttemptAt: new Date() })
      .where(and(eq(webhookDeliveries.id, delivery.id), eq(webhookDeliveries.status, "pending")));
  };
  // Nothing to send, and retrying will not change that: ends the delivery without an HTTP attempt.
  const giveUp = (error: string) =>
    deps.db
      .update(webhookDeliveries)
      .set({ status: "failed", error, nextAttemptAt: null })
      .where(and(eq(webhookDeliveries.id, delivery.id), eq(webhookDeliveries.status, "pending")));

  if (!hook.enabled) return void (await giveUp("webhook_disabled"));
  const [event] = await deps.db.select().from(events).where(eq(events.id, delivery.eventId));
  if (!event) return void (await giveUp("event_pruned"));
  let secret: string;
  try {
    secret = deps.secrets.decrypt(hook.secretEnc, secretAt.webhook(hook.id));
  } catch (err) {
    log.error({ err: (err as Error).message }, "webhook secret unreadable");
    return void (await giveUp("secret_unreadable"));
  }

  const body = JSON.stringify(renderEvent(event));
  const timestamp = Math.floor(deps.clock().getTime() / 1000);
  const started = performance.now();
  let status: number | null = null;
  let error: string | null = null;
  try {
    // Redirects are never followed: one could take the signed event somewhere the admin did not choose.
    status = await postOnce(
      hook.url,
      {
        "content-type": "application/json",
        "user-agent": "cloud-cli-proxy-webhooks/1",
        [TIMESTAMP_HEADER]: String(timestamp),
        [SIGNATURE_HEADER]: signPayload(secret, timestamp, body),
        [DELIVERY_HEADER]: delivery.id,
        [EVENT_TYPE_HEADER]: delivery.eventType,
        [WEBHOOK_HEADER]: hook.id,
      },
      body,
      deps.config.WEBHOOK_TIMEOUT_MS,
    );
    if (status < 200 || status > 299) error = status >= 300 && status <= 399 ? `redirect_not_followed (http_${status})` : `http_${status}`;
  } catch (err) {
    error = describeFailure(err);
  }
  const durationMs = Math.round(performance.now() - started);
  const attempt = job.attemptsMade + 1;
  const last = attempt >= (job.opts.attempts ?? 1);
  if (error === null) {
    await finish({ status: "succeeded", responseStatus: status, error: null, durationMs, nextAttemptAt: null });
    log.debug({ attempt, status, duration_ms: durationMs }, "webhook delivered");
    return;
  }
  if (last) {
    await finish({ status: "failed", responseStatus: status, error, durationMs, nextAttemptAt: null });
    log.warn({ attempt, status, error, duration_ms: durationMs }, "webhook delivery failed for good");
    return;
  }
  // BullMQ's exponential back-off: base × 2^(attempt-1) before the next attempt.
  const backoff = job.opts.backoff;
  const base = typeof backoff === "object" && backoff.delay !== undefined ? backoff.delay : deps.config.WEBHOOK_RETRY_BASE_MS;
  const delay = base * 2 ** (attempt - 1);
  await finish({ responseStatus: status, error, durationMs, nextAttemptAt: new Date(Date.now() + delay) });
  log.debug({ attempt, status, error, duration_ms: durationMs }, "webhook delivery attempt failed; retrying");
  throw new DeliveryAttemptFailed(error);
}
