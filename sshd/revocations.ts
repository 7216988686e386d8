import { inArray } from "drizzle-orm";
import type { Redis } from "ioredis";
import { hosts, users } from "../shared/db/schema/index.js";
import { subscribeRevocations } from "../shared/services/revocations.js";
import { isExpired } from "../shared/services/users/render.js";
import type { SshdDeps } from "./server.js";

/** How often live sessions are re-checked against the database (covers lost pub/sub messages). */
export const RECHECK_INTERVAL_MS = 10_000;

/**
 * End live sessions when access is revoked (docs/architecture.md#ssh-proxy): at once on a published
 * revocation, and at the latest at the next periodic re-check.
 */
export async function watchRevocations(deps: SshdDeps, subscriber: Redis): Promise<() => Promise<void>> {
  const unsubscribe = await subscribeRevocations(subscriber, deps.config.REDIS_PREFIX, (msg) => {
    const n = deps.sessions.closeWhere((s) => (msg.scope === "user" ? s.userId === msg.id : s.hostId === msg.id), msg.reason);
    if (n) deps.logger.info({ ...msg, sessions: n }, "closed sessions after a revocation");
  });

  const timer = setInterval(() => {
    void recheck(deps).catch((err: unknown) => deps.logger.warn({ err }, "session re-check failed"));
  }, RECHECK_INTERVAL_MS);
  return async () => {
    clearInterval(timer);
    await unsubscribe();
  };
}

async function recheck(deps: SshdDeps): Promise<void> {
  await deps.sessions.refresh();
  const live = deps.sessions.all();
  if (live.length === 0) return;
  const userRows = await deps.db.select().from(users).where(inArray(users.id, [...new Set(live.map((s) => s.userId))]));
  const hostRows = await deps.db.select().from(hosts).where(inArray(hosts.id, [...new Set(live.map((s) => s.hostId))]));
  const now = deps.clock();
  const badUsers = new Map<string, string>();
  for (const u of userRows) {
    if (u.deletedAt) badUsers.set(u.id, "user_deleted");
    else if (u.status === "disabled") badUsers.set(u.id, "user_disabled");
    else if (isExpired(u, now)) badUsers.set(u.id, "user_expired");
  }
  const okHosts = new Set(hostRows.filter((h) => h.status === "running").map((h) => h.id));
  for (const s of live) {
    const userReason = badUsers.get(s.userId) ?? (userRows.some((u) => u.id === s.userId) ? undefined : "user_deleted");
    if (userReason) s.close(userReason);
    else if (!okHosts.has(s.hostId)) s.close("host_not_running");
  }
}
