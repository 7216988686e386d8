import { eq, sql } from "drizzle-orm";
import { users } from "../../db/schema/index.js";
import type { ServiceContext } from "../context.js";
import { recordEvent } from "../events.js";
import { stopHostsOfUser } from "../hosts/lifecycle.js";
import { assertNotAdmin } from "./guards.js";
import { getLiveUser } from "./lookup.js";
import { renderUser } from "./render.js";

export async function setUserStatus({
  ctx,
  userId,
  status,
}: {
  ctx: ServiceContext;
  userId: string;
  status: "active" | "disabled";
}) {
  const now = ctx.clock();
  const { row, stopTasks } = await ctx.db.transaction(async (tx) => {
    const user = await getLiveUser(tx, userId, { forUpdate: true });
    if (status === "disabled") assertNotAdmin(user, "disable");
    // Same status as stored: nothing changes, no event (docs/api.md#users).
    if (user.status === status) return { row: user, stopTasks: [] };
    const [updated] = await tx
      .update(users)
      .set({
        status,
        updatedAt: now,
        // Disabling revokes every token; re-enabling does not revive them.
        ...(status === "disabled" ? { tokenVersion: sql`${users.tokenVersion} + 1` } : {}),
      })
      .where(eq(users.id, user.id))
      .returning();
    await recordEvent(tx, {
      type: status === "disabled" ? "user.disabled" : "user.enabled",
      level: status === "disabled" ? "warn" : "info",
      message: `user ${user.username} ${status === "disabled" ? "disabled" : "enabled"}`,
      actorId: ctx.actor?.id,
      userId: user.id,
      metadata: { username: user.username },
    });
    // Disabling stops the user's hosts; enabling starts nothing.
    const stopTasks =
      status === "disabled" ? await stopHostsOfUser(tx, user.id, { requestedBy: "system:user-disabled", now, requestId: ctx.requestId }) : [];
    return { row: updated!, stopTasks };
  });
  if (status === "disabled" && row.status === "disabled") await ctx.revoke({ scope: "user", id: row.id, reason: "user_disabled" });
  for (const t of stopTasks) await ctx.enqueue(t);
  return { user: renderUser(row, now) };
}
