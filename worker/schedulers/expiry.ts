import { and, eq, isNotNull, isNull, lte, ne, or, sql } from "drizzle-orm";
import { users, type TaskRow } from "../../shared/db/schema/index.js";
import { recordEvent } from "../../shared/services/events.js";
import { stopHostsOfUser } from "../../shared/services/hosts/lifecycle.js";
import type { WorkerDeps } from "../deps.js";

/**
 * Enforce expiries (docs/architecture.md#schedulers): once per expiry value, revoke tokens, stop the user's
 * hosts (`system:expiry`; the stops record the run's request id) and record `user.expired`. Access
 * was already refused from the instant of expiry by the per-request checks; this makes the hosts follow.
 */
export async function runExpiryScan(deps: WorkerDeps, run: { requestId?: string } = {}): Promise<{ expired: number }> {
  const now = deps.clock();
  const due = await deps.db
    .select({ id: users.id })
    .from(users)
    .where(
      and(
        isNull(users.deletedAt),
        eq(users.role, "user"),
        isNotNull(users.expiresAt),
        lte(users.expiresAt, now),
        or(isNull(users.expiryEnforcedFor), ne(users.expiryEnforcedFor, users.expiresAt)),
      ),
    );
  let expired = 0;
  for (const { id } of due) {
    const created: TaskRow[] = await deps.db.transaction(async (tx) => {
      // Re-read under lock: the admin may have extended the expiry meanwhile.
      const [u] = await tx.select().from(users).where(eq(users.id, id)).for("update");
      if (!u || u.deletedAt || !u.expiresAt || u.expiresAt > now) return [];
      if (u.expiryEnforcedFor && u.expiryEnforcedFor.getTime() === u.expiresAt.getTime()) return [];
      await tx
        .update(users)
        .set({ expiryEnforcedFor: u.expiresAt, tokenVersion: sql`${users.tokenVersion} + 1`, updatedAt: now })
        .where(eq(users.id, u.id));
      const stops = await stopHostsOfUser(tx, u.id, { requestedBy: "system:expiry", now, requestId: run.requestId });
      await recordEvent(tx, {
        type: "user.expired",
        level: "warn",
        message: `user ${u.username} expired`,
        userId: u.id,
        metadata: { username: u.username, expires_at: u.expiresAt.toISOString() },
      });
      expired++;
      return stops;
    });
    await deps.revoke({ scope: "user", id, reason: "user_expired" });
    for (const t of created) await deps.enqueue(t);
  }
  return { expired };
}
