import type { Context, MiddlewareHandler } from "hono";
import { newRequestId, withLogContext } from "../../shared/log-context.js";
import type { Logger } from "../../shared/logger.js";
import type { ApiMetrics } from "../metrics.js";

/**
 * Access logs must not carry credentials that travel in URLs: the VNC `token` query parameter
 * and the bootstrap task id (a capability) are redacted (docs/api.md#routing).
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

/**
 * An incoming `X-Request-Id` is honoured when it is a plain token of at most 128 characters (what
 * proxies and load balancers send: UUIDs, hex, `host:seq`); anything else — empty, too long, spaces,
 * quotes, newlines that could forge log lines or headers — is replaced by a fresh UUID.
 */
export const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;

export function acceptRequestId(header: string | undefined): string {
  return header !== undefined && REQUEST_ID_RE.test(header) ? header : newRequestId();
}

/** The request id of this request (set by requestContext). */
export function requestIdOf(c: Context): string | undefined {
  return c.get("requestId" as never) as string | undefined;
}

/** This request's logger: every line carries `request_id` (falls back to the process logger). */
export function requestLogger(c: Context, fallback: Logger): Logger {
  return (c.get("logger" as never) as Logger | undefined) ?? fallback;
}

/**
 * The route template a handler serves (`/v1/admin/hosts/{hostID}`), for the request-duration
 * histogram: set by the route registration, never derived from the raw path (whose ids would make
 * one series per host).
 */
export function setRouteTemplate(c: Context, template: string): void {
  c.set("routeTemplate" as never, template as never);
}

const METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/**
 * Request id, no-store caching for API paths, the request-duration histogram (by method, route
 * template and status) and one access-log line per request (never bodies).
 */
export function requestContext(deps: {
  logger: Logger;
  clientIp: (c: Context) => string;
  metrics: Pick<ApiMetrics, "httpDuration">;
}): MiddlewareHandler {
  const { logger, clientIp, metrics } = deps;
  return async (c, next) => {
    const started = performance.now();
    const requestId = acceptRequestId(c.req.header("x-request-id"));
    const log = logger.child({ request_id: requestId });
    c.set("requestId" as never, requestId as never);
    c.set("logger" as never, log as never);
    // Everything the request runs logs with its id, whichever logger it writes through (service
    // code holding the process logger included): shared/log-context.ts.
    await withLogContext({ request_id: requestId }, next);
    const url = new URL(c.req.url);
    c.res.headers.set("x-request-id", requestId);
    if (url.pathname.startsWith("/v1/") || url.pathname.startsWith("/entry/")) {
      c.res.headers.set("cache-control", "no-store");
    }
    const seconds = (performance.now() - started) / 1000;
    const route = (c.get("routeTemplate" as never) as string | undefined) ?? "unmatched";
    // Labels from bounded sets only: a client choosing methods or paths must not mint series.
    const method = METHODS.has(c.req.method) ? c.req.method : "other";
    metrics.httpDuration.observe({ method, route, status: String(c.res.status) }, seconds);
    log.info(
      {
        method: c.req.method,
        path: redactPath(url),
        route,
        status: c.res.status,
        duration_ms: Math.round(seconds * 10000) / 10,
        ip: clientIp(c),
      },
      "request",
    );
  };
}
