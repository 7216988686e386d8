import { eq, sql } from "drizzle-orm";
import { hosts, users } from "../../db/schema/index.js";
import type { ServiceContext } from "../context.js";
import { recordEvent } from "../events.js";
import { assertNotAdmin } from "./guards.js";
import { getLiveUser } from "./lookup.js";

/**
 * Delete a user (behaviour.md §3.2). The user disappears from every answer at once and its
 * username is free; with no hosts left the row (and its SSH keys, by cascade) goes immediately.
 */
export async function deleteUser({ ctx, userId }: { ctx: ServiceContext; userId: string }): Promise<void> {
  await ctx.db.transaction(async (tx) => {
    const user = await getLiveUser(tx, userId, { forUpdate: true });
    assertNotAdmin(user, "delete");
    const owned = await tx.select({ id: hosts.id }).from(hosts).where(eq(hosts.userId, user.id));
    const now = ctx.clock();
    if (owned.length === 0) {
      await tx.delete(users).where(eq(users.id, user.id));
    } else {
      await tx
        .update(users)
        .set({ deletedAt: now, updatedAt: now, tokenVersion: sql`${users.tokenVersion} + 1` })
        .where(eq(users.id, user.id));
    }
    await recordEvent(tx, {
      type: "user.deleted",
      level: "warn",
      message: `user ${user.username} deleted`,
      actorId: ctx.actor?.id,
      userId: user.id,
      metadata: { username: user.username, host_ids: owned.map((h) => h.id) },
    });
  });
}
