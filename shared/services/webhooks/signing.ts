import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * The signature scheme of webhook deliveries (docs/api.md#webhooks-signature):
 *
 *   X-CCP-Timestamp: <unix seconds>
 *   X-CCP-Signature: v1=<hex HMAC-SHA256(key = the secret's UTF-8 bytes, message = "<timestamp>.<raw body>")>
 *
 * The timestamp is signed with the body, so a receiver that refuses old timestamps (5 minutes)
 * refuses replays. The secret is `whsec_` + 32 random bytes (base64url), shown once.
 */
export const SIGNATURE_HEADER = "x-ccp-signature";
export const TIMESTAMP_HEADER = "x-ccp-timestamp";
export const DELIVERY_HEADER = "x-ccp-delivery";
export const EVENT_TYPE_HEADER = "x-ccp-event-type";
export const WEBHOOK_HEADER = "x-ccp-webhook";

export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString("base64url")}`;
}

export function signPayload(secret: string, timestamp: number, body: string): string {
  return `v1=${createHmac("sha256", secret).update(`${timestamp}.${body}`, "utf8").digest("hex")}`;
}

/** The receiver's side, as docs/api.md#webhooks-signature shows it (used by the tests). */
export function verifySignature(secret: string, timestamp: string, body: string, header: string, nowSeconds: number, toleranceSeconds = 300): boolean {
  if (!/^\d+$/.test(timestamp) || Math.abs(nowSeconds - Number(timestamp)) > toleranceSeconds) return false;
  const expected = Buffer.from(signPayload(secret, Number(timestamp), body));
  const given = Buffer.from(header);
  return expected.length === given.length && timingSafeEqual(expected, given);
}
