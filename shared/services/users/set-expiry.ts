import { eq, sql } from "drizzle-orm";
import { users } from "../../db/schema/index.js";
import { Invalid } from "../../errors.js";
import type { ServiceContext } from "../context.js";
import { recordEvent } from "../events.js";
import { assertNotAdmin } from "./guards.js";
import { getLiveUser } from "./lookup.js";
import { isExpired, renderUser } from "./render.js";

export async function setUserExpiry({
  ctx,
  userId,
  expiresAt,
}: {
  ctx: ServiceContext;
  userId: string;
  expiresAt: Date | null;
}) {
  const now = ctx.clock();
  // "Not strictly in the future" is body validation: it must decide before existence (404) and
  // the admin guard (409), per the evaluation order of docs/api.md#evaluation-order.
  if (expiresAt && expiresAt.getTime() <= now.getTime()) {
    throw Invalid([{ field: "expires_at", message: "must be in the future" }]);
  }
  const row = await ctx.db.transaction(async (tx) => {
    const user = await getLiveUser(tx, userId, { forUpdate: true });
    assertNotAdmin(user, "set an expiry on");
    const wasExpired = isExpired(user, now);
    const [updated] = await tx
      .update(users)
      .set({
        expiresAt,
        updatedAt: now,
        // Tokens issued before the expiry stay dead even when access is restored.
        ...(wasExpired ? { tokenVersion: sql`${users.tokenVersion} + 1` } : {}),
      })
      .where(eq(users.id, user.id))
      .returning();
    await recordEvent(tx, {
      type: "user.expiry.updated",
      message: `expiry of user ${user.username} updated`,
      actorId: ctx.actor?.id,
      userId: user.id,
      metadata: {
        expires_at: expiresAt?.toISOString() ?? null,
        previous_expires_at: user.expiresAt?.toISOString() ?? null,
      },
    });
    return updated!;
  });
  return { user: renderUser(row, now) };
}
