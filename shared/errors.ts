/**
 * Typed domain errors. Services throw these; the API maps `kind` to an HTTP status in one place
 * (api/http/errors.ts) and the worker maps them to retry / no-retry. `code` is the stable
 * snake_case code clients branch on; `message` is a human sentence without secrets.
 */
export type ErrorKind =
  | "invalid"
  | "unauthorized"
  | "invalid_credentials"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "gone"
  | "payload_too_large"
  | "rate_limited"
  | "unavailable"
  | "bad_gateway";

export interface FieldIssue {
  field: string;
  message: string;
}

export class ServiceError extends Error {
  constructor(
    readonly kind: ErrorKind,
    readonly code: string,
    message: string,
    readonly extra: { details?: FieldIssue[]; retryAfterSeconds?: number; status?: number; tokenPresented?: boolean } = {},
  ) {
    super(message);
    this.name = "ServiceError";
  }
}

export const Invalid = (details: FieldIssue[], message?: string) =>
  new ServiceError(
    "invalid",
    "invalid_request",
    message ?? (details[0] ? `${details[0].field}: ${details[0].message}` : "invalid request"),
    { details },
  );
export const NotFound = (code: string, message: string) => new ServiceError("not_found", code, message);
export const Conflict = (code: string, message: string) => new ServiceError("conflict", code, message);
export const Forbidden = (code: string, message: string) => new ServiceError("forbidden", code, message);
/** RFC 6750: `error="invalid_token"` only when a token was presented. */
export const Unauthorized = (message = "authentication required", tokenPresented = false) =>
  new ServiceError("unauthorized", "unauthorized", message, { tokenPresented });
export const InvalidCredentials = () =>
  new ServiceError("invalid_credentials", "invalid_credentials", "invalid credentials");
export const RateLimited = (retryAfterSeconds: number) =>
  new ServiceError("rate_limited", "rate_limited", "too many failed attempts; try again later", {
    retryAfterSeconds: Math.max(1, Math.ceil(retryAfterSeconds)),
  });
/**
 * A per-user cap on long-lived connections (SSE streams, desktop WebSockets) is reached (issue 10
 * docs/api.md#auth): 429 before anything streams. `retry_after` is a hint; a slot frees when one closes.
 */
export const TooManyConnections = (what: string, limit: number) =>
  new ServiceError("rate_limited", "too_many_connections", `too many open ${what} (at most ${limit}); close one and try again`, {
    retryAfterSeconds: 5,
  });
export const Unavailable = (code = "service_unavailable", message = "service temporarily unavailable") =>
  new ServiceError("unavailable", code, message);

/** An upstream the API proxies to (a host's VNC server) could not be reached (docs/api.md#vnc-proxy). */
export const BadGateway = (code = "upstream_unreachable", message = "the host's desktop could not be reached") =>
  new ServiceError("bad_gateway", code, message);

export function isServiceError(err: unknown): err is ServiceError {
  return err instanceof ServiceError;
}
