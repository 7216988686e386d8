import { inArray } from "drizzle-orm";
import type { Redis } from "ioredis";
import type { Db } from "../../shared/db/client.js";
import { hosts } from "../../shared/db/schema/index.js";
import type { Logger } from "../../shared/logger.js";
import type { Actor } from "../../shared/services/context.js";
import { subscribeRevocations } from "../../shared/services/revocations.js";
import type { DesktopSessions } from "./desktop-sessions.js";
import type { VncPortal } from "./target.js";

/** How often open VNC WebSockets are re-checked (docs/api.md#token-checks / docs/api.md#vnc-proxy). */
export const VNC_RECHECK_INTERVAL_MS = 30_000;

export interface VncSession {
  id: number;
  portal: VncPortal;
  actorId: string;
  /** The host's owner. */
  userId: string;
  hostId: string;
  /** Re-checks the credential the socket was opened with (bearer token or desktop session). */
  check: () => Promise<Actor | null>;
  close(reason: string): void;
}

export interface VncSessions {
  add(s: Omit<VncSession, "id">): VncSession;
  remove(s: VncSession): void;
  count(): number;
  /** Close every session matching `pred`; returns how many. */
  closeWhere(pred: (s: VncSession) => boolean, reason: string): number;
  /**
   * Close sessions at once on a published revocation (user disabled/expired/deleted, host
   * stopped/rebuilt/deleted) and re-check every session's token and host periodically, which also
   * covers a lost pub/sub message. Returns a stop function.
   */
  watch(subscriber: Redis): Promise<() => Promise<void>>;
}

export function createVncSessions(deps: {
  db: Db;
  logger: Logger;
  prefix: string;
  desktops: DesktopSessions;
  recheckMs?: number;
}): VncSessions {
  const live = new Map<number, VncSession>();
  let seq = 0;

  const closeWhere = (pred: (s: VncSession) => boolean, reason: string) => {
    let n = 0;
    for (const s of [...live.values()]) {
      if (!pred(s)) continue;
      live.delete(s.id);
      s.close(reason);
      n++;
    }
    return n;
  };

  const recheck = async () => {
    const open = [...live.values()];
    if (open.length === 0) return;
    const rows = await deps.db
      .select({ id: hosts.id, status: hosts.status, userId: hosts.userId })
      .from(hosts)
      .where(inArray(hosts.id, [...new Set(open.map((s) => s.hostId))]));
    const byId = new Map(rows.map((r) => [r.id, r]));
    for (const s of open) {
      // For a desktop session this also restarts its idle timer: an open desktop is in use.
      const actor = await s.check();
      const host = byId.get(s.hostId);
      let reason: string | null = null;
      if (!actor || (s.portal === "admin" && actor.role !== "admin")) reason = "token_revoked";
      else if (!host || (s.portal === "user" && host.userId !== actor.id)) reason = "host_deleted";
      else if (host.status !== "running") reason = "host_not_running";
      if (reason && live.delete(s.id)) s.close(reason);
    }
  };

  return {
    add(s) {
      const session = { ...s, id: ++seq };
      live.set(session.id, session);
      return session;
    },
    remove(s) {
      live.delete(s.id);
    },
    count: () => live.size,
    closeWhere,
    async watch(subscriber) {
      const unsubscribe = await subscribeRevocations(subscriber, deps.prefix, (msg) => {
        const n = closeWhere((s) => (msg.scope === "user" ? s.userId === msg.id || s.actorId === msg.id : s.hostId === msg.id), msg.reason);
        if (n) deps.logger.info({ ...msg, sessions: n }, "closed VNC sessions after a revocation");
        // A stopped, rebuilt or deleted host's desktop sessions end too (user revocations need no
        // clean-up: every use re-checks the user's row and token version).
        if (msg.scope === "host") {
          void deps.desktops.endForHost(msg.id).catch((err: unknown) => deps.logger.warn({ err }, "could not end desktop sessions"));
        }
      });
      const timer = setInterval(() => {
        void recheck().catch((err: unknown) => deps.logger.warn({ err }, "VNC session re-check failed"));
      }, deps.recheckMs ?? VNC_RECHECK_INTERVAL_MS);
      timer.unref();
      return async () => {
        clearInterval(timer);
        await unsubscribe();
      };
    },
  };
}
