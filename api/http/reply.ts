import type { Context } from "hono";

/** JSON responses with the charset the spec names (docs/api.md#routing). */
export function json(c: Context, status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers, ...requestIdHeader(c) },
  });
}

/** A JSON body serialised (and encoded) already: a cached rendering (shared/services/hosts/list-cache.ts). */
export function jsonBytes(c: Context, status: number, bytes: Uint8Array): Response {
  return new Response(bytes, {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...requestIdHeader(c) },
  });
}

export function noContent(c: Context): Response {
  return new Response(null, { status: 204, headers: requestIdHeader(c) });
}

function requestIdHeader(c: Context): Record<string, string> {
  const id = c.get("requestId" as never) as string | undefined;
  return id ? { "x-request-id": id } : {};
}
