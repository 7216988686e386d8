import { eq } from "drizzle-orm";
import { users } from "../../db/schema/index.js";
import type { ServiceContext } from "../context.js";
import { recordEvent } from "../events.js";
import { getLiveUser } from "./lookup.js";
import { renderUser } from "./render.js";

/**
 * A user's idle policy (docs/idle.md#policy), the default of their hosts: part of
 * `PATCH /v1/admin/users/{userID}`. Only what changes is written, with one `user.updated` event.
 */
export async function setUserIdlePolicy({
  ctx,
  userId,
  input,
}: {
  ctx: ServiceContext;
  userId: string;
  input: { idle_stop_minutes?: number | null; idle_cpu_percent?: number | null };
}) {
  const row = await ctx.db.transaction(async (tx) => {
    const user = await getLiveUser(tx, userId, { forUpdate: true });
    const patch: Partial<typeof users.$inferInsert> = {};
    const changed: Record<string, { from: unknown; to: unknown }> = {};
    if (input.idle_stop_minutes !== undefined && input.idle_stop_minutes !== user.idleStopMinutes) {
      patch.idleStopMinutes = input.idle_stop_minutes;
      changed.idle_stop_minutes = { from: user.idleStopMinutes, to: input.idle_stop_minutes };
    }
    if (input.idle_cpu_percent !== undefined && input.idle_cpu_percent !== user.idleCpuPercent) {
      patch.idleCpuPercent = input.idle_cpu_percent;
      changed.idle_cpu_percent = { from: user.idleCpuPercent, to: input.idle_cpu_percent };
    }
    if (!Object.keys(changed).length) return user;
    const [updated] = await tx.update(users).set({ ...patch, updatedAt: ctx.clock() }).where(eq(users.id, user.id)).returning();
    await recordEvent(tx, {
      type: "user.updated",
      message: `user ${user.username} updated: ${Object.keys(changed).join(", ")}`,
      actorId: ctx.actor?.id,
      userId: user.id,
      metadata: { username: user.username, changed },
    });
    return updated!;
  });
  return { user: renderUser(row, ctx.clock()) };
}
