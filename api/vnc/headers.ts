/**
 * Header rules of the VNC proxy (docs/api.md#vnc-proxy). Content served by a host is untrusted, and
 * what the browser sends to the API (its token, its cookies) never reaches the host.
 */

/** Hop-by-hop headers (RFC 9110 docs/architecture.md#ssh-proxy) plus the ones the proxy owns. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** Never forwarded to a host: the caller's credentials and what would misdirect the request. */
// `referer` carries the API-side address a page was opened from (issue 10 §1: it once held a login
// token); `service-worker` never reaches a host since such requests are refused first.
const STRIPPED_REQUEST = new Set(["authorization", "cookie", "referer", "host", "forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-real-ip"]);

/** Never passed back to the browser from a host. */
// `service-worker-allowed` would widen a service worker's scope beyond the host's own prefix.
const STRIPPED_RESPONSE = new Set(["set-cookie", "set-cookie2", "service-worker-allowed"]);

/** Security headers added to every proxied response. */
export const PROXY_RESPONSE_HEADERS: Readonly<Record<string, string>> = {
  "x-content-type-options": "nosniff",
  "content-security-policy": "frame-ancestors 'none'",
  // Links and sub-resources of a host page never tell anyone where they were loaded from.
  "referrer-policy": "no-referrer",
};

export type HeaderList = [name: string, value: string][];

/** Names listed in `Connection` are hop-by-hop too. */
function connectionTokens(headers: HeaderList): Set<string> {
  const out = new Set<string>();
  for (const [k, v] of headers) {
    if (k.toLowerCase() === "connection") for (const t of v.split(",")) if (t.trim()) out.add(t.trim().toLowerCase());
  }
  return out;
}

/**
 * Headers of a request forwarded to a host: credentials, Host and hop-by-hop headers removed,
 * Host set to the target. A WebSocket upgrade keeps `Connection: Upgrade` / `Upgrade: websocket`.
 */
export function forwardRequestHeaders(headers: HeaderList, targetHost: string, opts: { upgrade?: boolean } = {}): HeaderList {
  const listed = connectionTokens(headers);
  const out: HeaderList = [["host", targetHost]];
  for (const [k, v] of headers) {
    const name = k.toLowerCase();
    if (STRIPPED_REQUEST.has(name) || HOP_BY_HOP.has(name) || listed.has(name)) continue;
    out.push([name, v]);
  }
  if (opts.upgrade) out.push(["connection", "Upgrade"], ["upgrade", "websocket"]);
  return out;
}

/** Headers of a host's response passed to the browser: Set-Cookie and hop-by-hop removed. */
export function forwardResponseHeaders(headers: HeaderList, opts: { upgrade?: boolean } = {}): HeaderList {
  const listed = connectionTokens(headers);
  const out: HeaderList = [];
  for (const [k, v] of headers) {
    const name = k.toLowerCase();
    if (STRIPPED_RESPONSE.has(name) || HOP_BY_HOP.has(name) || listed.has(name)) continue;
    if (name in PROXY_RESPONSE_HEADERS) continue;
    out.push([name, v]);
  }
  if (opts.upgrade) out.push(["connection", "Upgrade"], ["upgrade", "websocket"]);
  for (const [k, v] of Object.entries(PROXY_RESPONSE_HEADERS)) out.push([k, v]);
  return out;
}

/** Node's `rawHeaders` ([k, v, k, v, …]) as pairs. */
export function pairs(raw: string[]): HeaderList {
  const out: HeaderList = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i]!, raw[i + 1]!]);
  return out;
}

/** Serialise a header list for a raw HTTP/1.1 head; CR/LF in values cannot reach the wire. */
export function serialiseHeaders(headers: HeaderList): string {
  return headers.map(([k, v]) => `${k}: ${v.replace(/[\r\n]+/g, " ")}\r\n`).join("");
}
