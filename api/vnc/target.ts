import type { HostRow } from "../../shared/db/schema/index.js";
import { BadGateway, Conflict, Forbidden, NotFound, ServiceError, Unauthorized, Unavailable } from "../../shared/errors.js";
import type { Actor } from "../../shared/services/context.js";
import { actorForClaims } from "../../shared/services/auth/authenticate.js";
import { getHost } from "../../shared/services/hosts/lookup.js";
import { requestWake, wakeProgress } from "../../shared/services/hosts/wake.js";
import type { ApiDeps } from "../deps.js";

/** Port of the web VNC server inside every host (docs/architecture.md#containers). */
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

/**
 * What a request presents, in the order of docs/api.md#vnc-proxy: `Authorization: Bearer` (API clients), else the
 * `ccp_vnc` desktop-session cookie. A login token in the query string is not accepted: it would
 * reach host content through `location`, `Referer` and history (issue 10 §1).
 */
export interface VncCredentials {
  authorization?: string | undefined;
  cookieHeader?: string | undefined;
  search: URLSearchParams;
}

export interface VncTarget {
  actor: Actor;
  /** Re-checks the credential (bearer token or desktop session) for long-lived WebSockets. */
  check: () => Promise<Actor | null>;
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

type Presented = { kind: "bearer"; token: string } | { kind: "session"; id: string };

function presented(cred: VncCredentials): Presented | null {
  if (cred.authorization !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(cred.authorization);
    // A malformed Authorization header is not silently replaced by a cookie.
    return m ? { kind: "bearer", token: m[1]! } : null;
  }
  const c = cookieValue(cred.cookieHeader, VNC_COOKIE);
  return c ? { kind: "session", id: c } : null;
}

/**
 * The actor behind a desktop session, or null: the session exists (its idle timer restarts), it
 * was opened for this portal and host, and its user still passes docs/api.md#token-checks with the same role and
 * token version (so a password change or "log out everywhere" ends it).
 */
async function sessionActor(deps: ApiDeps, id: string, path: VncPath): Promise<Actor | null> {
  const binding = await deps.desktops.touch(id);
  if (!binding || binding.portal !== path.portal || binding.hostId !== path.hostId.toLowerCase()) return null;
  return actorForClaims(deps, binding);
}

/**
 * Authenticate and authorise a VNC proxy request and find where it goes (docs/api.md#vnc-proxy):
 * 401 without a valid token, 403 for a user token on the admin route, 404 for another user's
 * host, 409 `host_not_running`, 502 when a running host has no management address yet.
 */
export async function resolveVncTarget(deps: ApiDeps, path: VncPath & { upstreamPath: string }, cred: VncCredentials): Promise<VncTarget> {
  const p = presented(cred);
  if (!p) throw Unauthorized(cred.authorization !== undefined ? "malformed Authorization header" : undefined, cred.authorization !== undefined);
  const check = p.kind === "bearer" ? () => deps.authenticate(p.token) : () => sessionActor(deps, p.id, path);
  const actor = await check();
  if (!actor) throw Unauthorized(p.kind === "bearer" ? "invalid or expired token" : "desktop session ended; open the desktop again", true);
  if (path.portal === "admin" && actor.role !== "admin") throw Forbidden("forbidden", "admin role required");
  let host = await getHost(deps.db, path.hostId, path.portal === "user" ? { ownerId: actor.id } : {});
  if (host.status !== "running") host = await wakeForDesktop(deps, host);
  if (!host.managementAddress) throw BadGateway();
  const query = new URLSearchParams(cred.search);
  query.delete("token");
  query.delete("ticket");
  const qs = query.toString();
  return {
    actor,
    check,
    host,
    address: host.managementAddress,
    port: VNC_PORT,
    upstreamUrl: path.upstreamPath + (qs ? `?${qs}` : ""),
  };
}

/**
 * Opening the desktop of a host that is not running (docs/idle.md#wake): a host stopped for
 * idleness is started (`host.start`, `system:wake`, via `desktop`), or its start already under way
 * joined, and the request is answered 503 `host_waking` with `Retry-After` and the progress; the
 * page then shows a waiting page that reloads itself (api/vnc/http-proxy.ts) until the host runs.
 * After WAKE_TIMEOUT_SECONDS without success: 503 `host_wake_timeout`. Anything else: 409
 * `host_not_running`, as before.
 */
async function wakeForDesktop(deps: ApiDeps, host: HostRow): Promise<HostRow> {
  const { result, task } = await requestWake(deps.db, host.id, { via: "desktop", now: deps.clock() });
  if (task) await deps.enqueue(task);
  if (result.state === "refused") throw Conflict("host_not_running", `the host is ${host.status}, not running`);
  if (result.state === "waking") {
    const p = await wakeProgress(deps.db, host.id, result.taskId);
    if (p.state === "failed") throw Conflict("host_not_running", `the host could not be started (${p.errorCode ?? "start_failed"})`);
    if (p.state === "waking") {
      if (p.since && deps.clock().getTime() - p.since.getTime() > deps.config.WAKE_TIMEOUT_SECONDS * 1000) {
        throw Unavailable("host_wake_timeout", `the host did not wake within ${deps.config.WAKE_TIMEOUT_SECONDS}s; try again shortly`);
      }
      throw HostWaking(p.percent, p.text);
    }
  }
  return getHost(deps.db, host.id);
}

/** 503 while a host wakes for its desktop: retry in 2 s (docs/idle.md#wake). */
export const HostWaking = (percent: number, text: string) =>
  new ServiceError("unavailable", "host_waking", `waking the host: ${percent}% (${text})`, { retryAfterSeconds: 2 });

/**
 * `Set-Cookie` for a desktop session, scoped to this host's VNC prefix. No Max-Age: the session
 * lives server-side and ends there (idle limit, revocation); the cookie goes with the browser.
 */
export function vncCookie(deps: ApiDeps, prefix: string, sessionId: string): string {
  const secure = desktopBaseUrl(deps).startsWith("https:") ? "; Secure" : "";
  return `${VNC_COOKIE}=${sessionId}; Path=${prefix}; HttpOnly; SameSite=Strict${secure}`;
}

/** Where browsers open desktops: `VNC_PUBLIC_BASE_URL` when set, else `PUBLIC_BASE_URL`. */
export function desktopBaseUrl(deps: Pick<ApiDeps, "config">): string {
  return deps.config.VNC_PUBLIC_BASE_URL || deps.config.PUBLIC_BASE_URL;
}

/**
 * With `VNC_PUBLIC_BASE_URL` set, desktop routes answer only on that origin (compared by the
 * request's Host, which is never used to build anything): host content then never runs on the
 * API's origin. Without it every origin serves them, as before.
 */
export function assertDesktopOrigin(deps: Pick<ApiDeps, "config">, hostHeader: string | undefined): void {
  if (!deps.config.VNC_PUBLIC_BASE_URL) return;
  if ((hostHeader ?? "").toLowerCase() !== new URL(deps.config.VNC_PUBLIC_BASE_URL).host.toLowerCase()) {
    throw NotFound("not_found", "desktops are served on VNC_PUBLIC_BASE_URL");
  }
}
