import type { HostRow } from "../../shared/db/schema/index.js";
import { BadGateway, Conflict, Forbidden, Unauthorized } from "../../shared/errors.js";
import type { Actor } from "../../shared/services/context.js";
import { getHost } from "../../shared/services/hosts/lookup.js";
import type { ApiDeps } from "../deps.js";

/** Port of the web VNC server inside every host (behaviour.md §4.6). */
export const VNC_PORT = 6901;
export const VNC_COOKIE = "ccp_vnc";

export type VncPortal = "admin" | "user";

/** `/v1/{admin|user}/hosts/{hostID}/vnc[/rest]`, split; null for any other path. */
export interface VncPath {
  portal: VncPortal;
  hostId: string;
  /** `/v1/…/<id>/vnc/` — also the cookie's Path. */
  prefix: string;
  /** The path on the host's VNC server (`/` + rest), or null when the trailing slash is missing. */
  upstreamPath: string | null;
}

const VNC_PATH = /^\/v1\/(admin|user)\/hosts\/([^/]+)\/vnc(\/.*)?$/;

export function parseVncPath(pathname: string): VncPath | null {
  const m = VNC_PATH.exec(pathname);
  if (!m) return null;
  const [, portal, hostId, rest] = m;
  return {
    portal: portal as VncPortal,
    hostId: hostId!,
    prefix: `/v1/${portal}/hosts/${hostId}/vnc/`,
    upstreamPath: rest === undefined ? null : rest,
  };
}

/** What a request presents: the three places a token may come from, in the order of §4.7. */
export interface VncCredentials {
  authorization?: string | undefined;
  cookieHeader?: string | undefined;
  search: URLSearchParams;
}

export interface VncTarget {
  actor: Actor;
  token: string;
  /** The token came as `?token=`: the response sets the path cookie. */
  fromQuery: boolean;
  /** Seconds left on a `?token=` token (the cookie's Max-Age); 0 otherwise. */
  secondsLeft: number;
  host: HostRow;
  address: string;
  port: number;
  /** Path + query on the host, `token` removed. */
  upstreamUrl: string;
}

export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function presentedToken(cred: VncCredentials): { token: string; fromQuery: boolean } | null {
  if (cred.authorization !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(cred.authorization);
    // A malformed Authorization header is not silently replaced by a cookie.
    return m ? { token: m[1]!, fromQuery: false } : null;
  }
  const q = cred.search.get("token");
  if (q) return { token: q, fromQuery: true };
  const c = cookieValue(cred.cookieHeader, VNC_COOKIE);
  return c ? { token: c, fromQuery: false } : null;
}

/**
 * Authenticate and authorise a VNC proxy request and find where it goes (behaviour.md §4.7):
 * 401 without a valid token, 403 for a user token on the admin route, 404 for another user's
 * host, 409 `host_not_running`, 502 when a running host has no management address yet.
 */
export async function resolveVncTarget(deps: ApiDeps, path: VncPath & { upstreamPath: string }, cred: VncCredentials): Promise<VncTarget> {
  const presented = presentedToken(cred);
  if (!presented) throw Unauthorized(cred.authorization !== undefined ? "malformed Authorization header" : undefined, cred.authorization !== undefined);
  const actor = await deps.authenticate(presented.token);
  if (!actor) throw Unauthorized("invalid or expired token", true);
  if (path.portal === "admin" && actor.role !== "admin") throw Forbidden("forbidden", "admin role required");
  const host = await getHost(deps.db, path.hostId, path.portal === "user" ? { ownerId: actor.id } : {});
  if (host.status !== "running") throw Conflict("host_not_running", `the host is ${host.status}, not running`);
  if (!host.managementAddress) throw BadGateway();
  // The expiry is needed only for the cookie a `?token=` request sets.
  const claims = presented.fromQuery ? await deps.tokens.verify(presented.token) : null;
  const secondsLeft = claims ? Math.max(0, claims.exp - Math.floor(deps.clock().getTime() / 1000)) : 0;
  const query = new URLSearchParams(cred.search);
  query.delete("token");
  const qs = query.toString();
  return {
    actor,
    token: presented.token,
    fromQuery: presented.fromQuery,
    secondsLeft,
    host,
    address: host.managementAddress,
    port: VNC_PORT,
    upstreamUrl: path.upstreamPath + (qs ? `?${qs}` : ""),
  };
}

/** `Set-Cookie` for a token presented as `?token=`, scoped to this host's VNC prefix. */
export function vncCookie(deps: ApiDeps, prefix: string, target: VncTarget): string {
  const secure = deps.config.PUBLIC_BASE_URL.startsWith("https:") ? "; Secure" : "";
  return `${VNC_COOKIE}=${target.token}; Path=${prefix}; HttpOnly; SameSite=Strict; Max-Age=${target.secondsLeft}${secure}`;
}
