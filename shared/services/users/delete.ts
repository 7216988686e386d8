import { eq, sql } from "drizzle-orm";
import { hosts, users, type TaskRow } from "../../db/schema/index.js";
import type { ServiceContext } from "../context.js";
import { recordEvent } from "../events.js";
import { requestHostDeletion } from "../hosts/lifecycle.js";
import { assertNotAdmin } from "./guards.js";
import { getLiveUser } from "./lookup.js";

/**
 * Delete a user (docs/api.md#users). In one transaction the user disappears from every answer
 * (its username is free at once), its tokens die, and each of its hosts gets a `host.delete`
 * task; the row itself (and its SSH keys, by cascade) goes when the last host is gone — at once
 * when there is none.
 */
export async function deleteUser({ ctx, userId }: { ctx: ServiceContext; userId: string }): Promise<void> {
  const created = await ctx.db.transaction(async (tx) => {
    const user = await getLiveUser(tx, userId, { forUpdate: true });
    assertNotAdmin(user, "delete");
    const owned = await tx.select().from(hosts).where(eq(hosts.userId, user.id)).for("update");
    const now = ctx.clock();
    const toEnqueue: TaskRow[] = [];
    if (owned.length === 0) {
      await tx.delete(users).where(eq(users.id, user.id));
    } else {
      await tx
        .update(users)
        .set({ deletedAt: now, updatedAt: now, tokenVersion: sql`${users.tokenVersion} + 1` })
        .where(eq(users.id, user.id));
      for (const host of owned) {
        const { task, created } = await requestHostDeletion(tx, host, {
          keepHome: false,
          requestedBy: "system:user-deleted",
          actorId: ctx.actor?.id ?? null,
          now,
          requestId: ctx.requestId,
        });
        if (created) toEnqueue.push(task);
      }
    }
    await recordEvent(tx, {
      type: "user.deleted",
      level: "warn",
      message: `user ${user.username} deleted`,
      actorId: ctx.actor?.id,
      userId: user.id,
      metadata: { username: user.username, host_ids: owned.map((h) => h.id) },
    });
    return { toEnqueue, id: user.id };
  });
  await ctx.revoke({ scope: "user", id: created.id, reason: "user_deleted" });
  for (const t of created.toEnqueue) await ctx.enqueue(t);
}
