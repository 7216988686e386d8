import { createHash, randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import { redisKey } from "../../shared/redis.js";
import type { Actor } from "../../shared/services/context.js";
import type { VncPortal } from "./target.js";

/**
 * Browser access to a desktop without a login token in any URL or cookie (issue 10 §1,
 * docs/api.md#vnc-proxy as revised 2026-12-03).
 *
 * 1. `POST …/vnc/session` (Bearer) mints a one-time **ticket**: 32 random bytes, stored in Redis
 *    under its SHA-256 only, valid `TICKET_TTL_SECONDS`, bound to the user, role, token version,
 *    portal and host.
 * 2. `GET …/vnc/?ticket=` redeems it (GETDEL: once) and answers 303 to the bare prefix — so the
 *    ticket leaves the address bar before any host content loads — with `ccp_vnc=<session id>`.
 * 3. The **desktop session** is another 32 random bytes, stored under its SHA-256 with the same
 *    binding; it slides with use and expires after `VNC_SESSION_IDLE_SECONDS` without.
 *
 * Neither value is a credential anywhere else: API routes read only `Authorization: Bearer`.
 * Every use re-checks the user row against the binding (api/vnc/target.ts), so a password change,
 * "log out everywhere", disable, expiry or deletion ends every desktop session at once; stopping,
 * rebuilding or deleting the host deletes its sessions (revocation messages, api/vnc/sessions.ts).
 */
export const TICKET_TTL_SECONDS = 30;

export interface DesktopBinding {
  /** The user the session acts as, with the role and token version of the token that asked. */
  sub: string;
  role: "admin" | "user";
  tv: number;
  portal: VncPortal;
  hostId: string;
}

const sha256 = (v: string) => createHash("sha256").update(v).digest("hex");
/** 256 bits, URL- and cookie-safe. */
const secret = () => randomBytes(32).toString("base64url");
const WELL_FORMED = /^[A-Za-z0-9_-]{43}$/;

export interface DesktopSessions {
  issueTicket(actor: Actor & { tv: number }, portal: VncPortal, hostId: string): Promise<{ ticket: string; expiresAt: Date }>;
  /** The ticket's binding, consumed; null when unknown, used or expired. */
  redeemTicket(ticket: string): Promise<DesktopBinding | null>;
  /** A new session for a redeemed binding; returns the cookie value. */
  open(binding: DesktopBinding): Promise<string>;
  /** The session's binding, its idle timer restarted; null when unknown or idle too long. */
  touch(id: string): Promise<DesktopBinding | null>;
  /** End every session of a host (stopped, rebuilt, deleted). */
  endForHost(hostId: string): Promise<number>;
}

export function createDesktopSessions(redis: Redis, prefix: string, idleSeconds: number): DesktopSessions {
  const ticketKey = (t: string) => redisKey(prefix, "vnc", "ticket", sha256(t));
  const sessionKey = (id: string) => redisKey(prefix, "vnc", "session", sha256(id));
  // Hashes of a host's sessions, so a host revocation can end them without a key scan.
  const hostSet = (hostId: string) => redisKey(prefix, "vnc", "host-sessions", hostId);
  return {
    async issueTicket(actor, portal, hostId) {
      const ticket = secret();
      const binding: DesktopBinding = { sub: actor.id, role: actor.role, tv: actor.tv, portal, hostId };
      await redis.set(ticketKey(ticket), JSON.stringify(binding), "EX", TICKET_TTL_SECONDS);
      return { ticket, expiresAt: new Date(Date.now() + TICKET_TTL_SECONDS * 1000) };
    },
    async redeemTicket(ticket) {
      if (!WELL_FORMED.test(ticket)) return null;
      const raw = await redis.getdel(ticketKey(ticket));
      return raw ? (JSON.parse(raw) as DesktopBinding) : null;
    },
    async open(binding) {
      const id = secret();
      const key = sessionKey(id);
      await redis
        .multi()
        .set(key, JSON.stringify(binding), "EX", idleSeconds)
        .sadd(hostSet(binding.hostId), key)
        .expire(hostSet(binding.hostId), 7 * 86400)
        .exec();
      return id;
    },
    async touch(id) {
      if (!WELL_FORMED.test(id)) return null;
      const raw = await redis.getex(sessionKey(id), "EX", idleSeconds);
      return raw ? (JSON.parse(raw) as DesktopBinding) : null;
    },
    async endForHost(hostId) {
      const keys = await redis.smembers(hostSet(hostId));
      if (keys.length === 0) return 0;
      const n = await redis.del(...keys);
      await redis.del(hostSet(hostId));
      return n;
    },
  };
}
