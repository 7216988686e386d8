import { eq, sql } from "drizzle-orm";
import { users } from "../../db/schema/index.js";
import { Unauthorized } from "../../errors.js";
import type { ServiceContext } from "../context.js";
import { recordEvent } from "../events.js";

/**
 * "Log out everywhere" (issue 10 §1): bump the caller's token version, which ends every token,
 * desktop session and open desktop socket of theirs — the admin's too (its password comes from
 * the environment, so this is the admin's way to cut off a leaked token).
 */
export async function logoutEverywhere({ ctx }: { ctx: ServiceContext }): Promise<void> {
  if (!ctx.actor) throw Unauthorized();
  const actor = ctx.actor;
  await ctx.db.transaction(async (tx) => {
    await tx
      .update(users)
      .set({ tokenVersion: sql`${users.tokenVersion} + 1`, updatedAt: ctx.clock() })
      .where(eq(users.id, actor.id));
    await recordEvent(tx, {
      type: "auth.logged_out_everywhere",
      message: `user ${actor.username} ended all their sessions`,
      actorId: actor.id,
      userId: actor.id,
      metadata: { ip: ctx.ip },
    });
  });
  // Open desktop sockets close now rather than at their next 30 s re-check.
  await ctx.revoke({ scope: "user", id: actor.id, reason: "user_logged_out" });
}
