import type { Context } from "hono";
import { type ErrorKind, ServiceError } from "../../shared/errors.js";
import { AccessError } from "../../shared/services/access/errors.js";
import { json } from "./reply.js";

/** The one place where domain error kinds become HTTP statuses (docs/architecture.md#tree). */
const STATUS: Record<ErrorKind, number> = {
  invalid: 400,
  unauthorized: 401,
  invalid_credentials: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  gone: 410,
  payload_too_large: 413,
  rate_limited: 429,
  unavailable: 503,
  bad_gateway: 502,
};

/** Routes whose error bodies also carry `error_code` and `message` for the shell scripts. */
const SCRIPT_FACING = /^\/(v1\/bootstrap\/|v1\/entry\/|entry\/)/;

export function errorResponse(c: Context, err: ServiceError): Response {
  const { status, body, headers } = errorEnvelope(err, new URL(c.req.url).pathname);
  return json(c, status, body, headers);
}

/**
 * Status, JSON body and headers of an error: also written by hand on raw sockets (the VNC
 * proxy's WebSocket upgrades never reach Hono).
 */
export function errorEnvelope(
  err: ServiceError,
  pathname: string,
): { status: number; body: Record<string, unknown>; headers: Record<string, string> } {
  const status = err.extra.status ?? STATUS[err.kind];
  const body: Record<string, unknown> = { error: err.message, code: err.code };
  if (err.kind === "invalid" && err.extra.details) body.details = err.extra.details;
  const headers: Record<string, string> = {};
  if (err.kind === "rate_limited") {
    const s = err.extra.retryAfterSeconds ?? 1;
    body.retry_after = s;
    headers["retry-after"] = String(s);
  } else if (err.extra.retryAfterSeconds !== undefined) {
    // e.g. 503 `ssh_not_ready` on a bootstrap handoff requested too early (docs/api.md#bootstrap).
    headers["retry-after"] = String(err.extra.retryAfterSeconds);
  }
  if (err.kind === "unauthorized") {
    headers["www-authenticate"] = err.extra.tokenPresented ? 'Bearer error="invalid_token"' : "Bearer";
  }
  if (err.kind === "payload_too_large") headers.connection = "close";
  if (SCRIPT_FACING.test(pathname)) {
    body.error_code = err.code;
    body.message = err.message.replace(/["\\]/g, "'").replace(/[^\x20-\x7e]/g, "?");
  }
  // Extra fields the scripts read (e.g. `task_error_code`), after the standard keys.
  if (err instanceof AccessError) for (const [k, v] of Object.entries(err.fields)) if (!(k in body)) body[k] = v;
  return { status, body, headers };
}

export function internalErrorResponse(c: Context, requestId: string): Response {
  return json(c, 500, { error: "internal error", code: "internal_error", request_id: requestId });
}

/** A stored secret the operation needs does not decrypt in its row (issue 10 §5): 409, logged by the caller. */
export const SecretUnreadable = () =>
  new ServiceError("conflict", "secret_unreadable", "a stored secret of this resource cannot be decrypted; an administrator must set it again");

export const PayloadTooLarge = () =>
  new ServiceError("payload_too_large", "payload_too_large", "request body is larger than 1 MiB");
