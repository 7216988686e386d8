import { request as httpRequest } from "node:http";
import { Readable } from "node:stream";
import type { Context } from "hono";
import { BadGateway, Forbidden, isServiceError, NotFound, Unauthorized } from "../../shared/errors.js";
import type { ApiDeps } from "../deps.js";
import { forwardRequestHeaders, forwardResponseHeaders, type HeaderList, pairs } from "./headers.js";
import { assertDesktopOrigin, parseVncPath, resolveVncTarget, type VncPath, vncCookie } from "./target.js";

/** Connect / response-head timeout towards a host's VNC server (docs/api.md#vnc-proxy, docs/operations.md#deploy). */
export const VNC_DIAL_TIMEOUT_MS = 5_000;

const NO_BODY_STATUS = new Set([101, 204, 205, 304]);

/**
 * Plain HTTP through the VNC proxy (noVNC's page, scripts and images). Bodies stream both ways;
 * the response body is pulled by the client's socket, so a slow browser slows the host down
 * instead of growing the API's memory.
 */
export function vncHttpHandler(deps: ApiDeps) {
  const handle = proxyRequest(deps);
  return async (c: Context): Promise<Response> => {
    try {
      return await handle(c);
    } catch (err) {
      if (err instanceof WakingPage) return wakingPage(err.message);
      throw err;
    }
  };
}

/** Thrown inside the handler to answer with the waiting page instead of the JSON 503. */
class WakingPage extends Error {}

/**
 * The desktop's waiting page while its host wakes (docs/idle.md#wake): 503 with `Retry-After`,
 * reloading itself every 2 s (a meta refresh: no script, so nothing the CSP has to allow), until
 * the proxy serves the host's own page. No host content, nothing from the request in it.
 */
function wakingPage(progress: string): Response {
  const text = progress.replace(/[^A-Za-z0-9 .,:%()-]/g, "");
  const html = `<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2"><title>Waking your host</title></head><body style="font-family:sans-serif;margin:3em"><h1>Waking your host&hellip;</h1><p>It was stopped while idle and is starting again; this page reloads by itself.</p><p>${text}</p></body></html>`;
  return new Response(html, {
    status: 503,
    headers: { "content-type": "text/html; charset=utf-8", "retry-after": "2", "cache-control": "no-store", "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'" },
  });
}

function proxyRequest(deps: ApiDeps) {
  return async (c: Context): Promise<Response> => {
    const url = new URL(c.req.url);
    const path = parseVncPath(url.pathname);
    if (!path) throw NotFound("not_found", "no such route");
    assertDesktopOrigin(deps, c.req.header("host"));
    if (path.upstreamPath === null) {
      return new Response(null, { status: 301, headers: { location: path.prefix + url.search } });
    }
    // A host may not install a service worker on this origin: it would outlive the desktop and
    // see every later request under its scope (issue 10 §1).
    if (c.req.header("service-worker") !== undefined) throw Forbidden("forbidden", "service workers are not allowed");
    const ticket = url.searchParams.get("ticket");
    if (ticket !== null && path.upstreamPath === "/") return redeemTicket(deps, path, ticket);
    const headers: HeaderList = [...c.req.raw.headers.entries()];
    const target = await resolveVncTarget(deps, { ...path, upstreamPath: path.upstreamPath }, {
      authorization: c.req.header("authorization"),
      cookieHeader: c.req.header("cookie"),
      search: url.searchParams,
    }).catch((err: unknown) => {
      // A browser opening the desktop of a host that wakes gets a page that waits (docs/idle.md#wake).
      if (isServiceError(err) && err.code === "host_waking" && c.req.method === "GET" && /text\/html/.test(c.req.header("accept") ?? "")) {
        throw new WakingPage(err.message);
      }
      throw err;
    });
    const method = c.req.method;
    const hasBody = method !== "GET" && method !== "HEAD" && c.req.raw.body !== null;

    const upstream = await new Promise<import("node:http").IncomingMessage>((resolve, reject) => {
      const req = httpRequest({
        host: target.address,
        port: target.port,
        method,
        path: target.upstreamUrl,
        headers: headersObject(forwardRequestHeaders(headers, `${target.address}:${target.port}`)),
        agent: false,
      });
      req.setTimeout(VNC_DIAL_TIMEOUT_MS, () => req.destroy(new Error("timeout")));
      req.once("error", () => reject(BadGateway()));
      req.once("response", (res) => {
        req.setTimeout(0);
        resolve(res);
      });
      if (hasBody) Readable.fromWeb(c.req.raw.body as never).once("error", () => req.destroy()).pipe(req);
      else req.end();
    });

    const out = new Headers();
    for (const [k, v] of forwardResponseHeaders(pairs(upstream.rawHeaders))) out.append(k, v);
    const requestId = c.get("requestId" as never) as string | undefined;
    if (requestId) out.set("x-request-id", requestId);
    const status = upstream.statusCode ?? 502;
    if (method === "HEAD" || NO_BODY_STATUS.has(status)) {
      upstream.resume();
      return new Response(null, { status, headers: out });
    }
    return new Response(Readable.toWeb(upstream) as ReadableStream, { status, headers: out });
  };
}

/**
 * `GET …/vnc/?ticket=…`: trade a one-time ticket for a desktop session and send the browser to
 * the bare prefix (303, no query), so no host page ever loads with a secret in its address.
 */
async function redeemTicket(deps: ApiDeps, path: VncPath, ticket: string): Promise<Response> {
  const binding = await deps.desktops.redeemTicket(ticket);
  // A ticket works once, for the host and portal it was asked for.
  if (!binding || binding.portal !== path.portal || binding.hostId !== path.hostId.toLowerCase()) {
    throw Unauthorized("desktop link is invalid, used or expired; open the desktop again", true);
  }
  const sessionId = await deps.desktops.open(binding);
  return new Response(null, {
    status: 303,
    headers: { location: path.prefix, "set-cookie": vncCookie(deps, path.prefix, sessionId), "cache-control": "no-store", "referrer-policy": "no-referrer" },
  });
}

function headersObject(list: HeaderList): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of list) {
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}
