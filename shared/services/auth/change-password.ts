import { eq, sql } from "drizzle-orm";
import { hashPassword } from "../../crypto/passwords.js";
import { users } from "../../db/schema/index.js";
import { Conflict, InvalidCredentials, Unauthorized } from "../../errors.js";
import type { AuthDeps, ServiceContext } from "../context.js";
import { recordEvent } from "../events.js";
import { getLiveUser } from "../users/lookup.js";
import { checkPassword } from "./password-gate.js";
import type { ChangePasswordInput } from "./schemas.js";

export async function changeOwnPassword({
  ctx,
  input,
}: {
  ctx: ServiceContext & AuthDeps;
  input: ChangePasswordInput;
}) {
  if (!ctx.actor) throw Unauthorized();
  const me = await getLiveUser(ctx.db, ctx.actor.id);
  const outcome = await checkPassword(ctx, {
    username: me.username,
    password: input.old_password,
    endpoint: "/v1/user/change-password",
    user: me,
  });
  if (!outcome.ok) throw InvalidCredentials();
  if (me.role === "admin") throw Conflict("admin_protected", "the admin password comes from the environment");
  const passwordHash = await hashPassword(input.new_password);
  const updated = await ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .update(users)
      .set({ passwordHash, tokenVersion: sql`${users.tokenVersion} + 1`, updatedAt: ctx.clock() })
      .where(eq(users.id, me.id))
      .returning();
    await recordEvent(tx, {
      type: "auth.password.changed",
      message: `user ${me.username} changed their password`,
      actorId: me.id,
      userId: me.id,
      metadata: { username: me.username },
    });
    return row!;
  });
  const { token, expiresIn } = await ctx.tokens.issue(updated);
  return { status: "ok" as const, token, expires_in: expiresIn };
}
