import { randomUUID } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import type { Logger } from "../../shared/logger.js";

/**
 * Access logs must not carry credentials that travel in URLs: the VNC `token` query parameter
 * and the bootstrap task id (a capability) are redacted (behaviour.md §1.2).
 */
export function redactPath(url: URL): string {
  let path = url.pathname.replace(/^(\/v1\/bootstrap\/tasks\/)[^/]+/, "$1[redacted]");
  if (url.search) {
    const params = new URLSearchParams(url.search);
    if (params.has("token")) params.set("token", "[redacted]");
    path += `?${params.toString()}`;
  }
  return path;
}

/** Request id, no-store caching for API paths, and one access-log line per request (never bodies). */
export function requestContext(logger: Logger, clientIp: (c: Parameters<MiddlewareHandler>[0]) => string): MiddlewareHandler {
  return async (c, next) => {
    const started = performance.now();
    const requestId = randomUUID();
    c.set("requestId" as never, requestId as never);
    c.set("logger" as never, logger.child({ request_id: requestId }) as never);
    await next();
    const url = new URL(c.req.url);
    c.res.headers.set("x-request-id", requestId);
    if (url.pathname.startsWith("/v1/") || url.pathname.startsWith("/entry/")) {
      c.res.headers.set("cache-control", "no-store");
    }
    logger.info(
      {
        request_id: requestId,
        method: c.req.method,
        path: redactPath(url),
        status: c.res.status,
        duration_ms: Math.round((performance.now() - started) * 10) / 10,
        ip: clientIp(c),
      },
      "request",
    );
  };
}
