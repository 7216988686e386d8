/**
 * Errors that mean a backing service (Postgres, Redis) is unavailable rather than that the
 * request was wrong. The API answers these with 503 `service_unavailable` (docs/api.md#errors);
 * the worker treats them as transient.
 */
const NODE_NET_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "ENOTFOUND", "EAI_AGAIN"]);
// postgres-js connection errors, and SQLSTATE classes 08 (connection), 53 (resources), 57P (shutdown).
const PG_CLIENT_CODES = new Set(["CONNECT_TIMEOUT", "CONNECTION_CLOSED", "CONNECTION_ENDED", "CONNECTION_DESTROYED"]);

export class BackendUnavailableError extends Error {
  constructor(readonly backend: "redis" | "postgres", cause: unknown) {
    super(`${backend} unavailable`, { cause });
    this.name = "BackendUnavailableError";
  }
}

export function isInfrastructureError(err: unknown): boolean {
  let cur: unknown = err;
  for (let i = 0; i < 5 && cur && typeof cur === "object"; i++) {
    if (cur instanceof BackendUnavailableError) return true;
    const e = cur as { code?: unknown; name?: unknown; message?: unknown; cause?: unknown };
    const code = typeof e.code === "string" ? e.code : "";
    if (NODE_NET_CODES.has(code) || PG_CLIENT_CODES.has(code)) return true;
    if (/^(08|53|57P)/.test(code) && code.length === 5) return true;
    if (e.name === "MaxRetriesPerRequestError") return true;
    // ioredis with the offline queue disabled rejects with this message while disconnected.
    if (typeof e.message === "string" && /Stream isn't writeable|Connection is closed/.test(e.message)) return true;
    cur = e.cause;
  }
  return false;
}
