import { eq, sql } from "drizzle-orm";
import { hashPassword } from "../../crypto/passwords.js";
import { generatePassword } from "../../crypto/random.js";
import { users } from "../../db/schema/index.js";
import { Invalid, NotFound } from "../../errors.js";
import { newPasswordField, usernameField } from "../../validation.js";
import type { ServiceContext } from "../context.js";
import { recordEvent } from "../events.js";
import { findLiveUserByUsername } from "./lookup.js";
import { renderUser } from "./render.js";

/**
 * Break-glass password reset (`admin reset-password`, README "Admin CLI"): any account, the admin's
 * included, gets the given password or a generated one, and its token version moves on so every
 * session of it ends. Unlike rotateUserPassword (the API's, users only) this is reachable only
 * from a shell on the server: whoever runs it already holds the deployment's secrets.
 *
 * The admin's password still comes from ADMIN_PASSWORD: the api restores it at its next start
 * unless the environment is changed too (the CLI says so).
 */
export async function resetPassword({ ctx, username, password }: { ctx: ServiceContext; username: string; password?: string }) {
  const name = usernameField.safeParse(username);
  if (!name.success) throw NotFound("user_not_found", `user ${username} not found`);
  if (password !== undefined) {
    const ok = newPasswordField.safeParse(password);
    if (!ok.success) throw Invalid([{ field: "password", message: ok.error.issues[0]?.message ?? "invalid" }]);
  }
  const generated = password === undefined;
  const next = password ?? generatePassword();
  const passwordHash = await hashPassword(next);
  const user = await ctx.db.transaction(async (tx) => {
    const found = await findLiveUserByUsername(tx, name.data);
    if (!found) throw NotFound("user_not_found", `user ${name.data} not found`);
    const [row] = await tx
      .update(users)
      .set({ passwordHash, tokenVersion: sql`${users.tokenVersion} + 1`, updatedAt: ctx.clock() })
      .where(eq(users.id, found.id))
      .returning();
    await recordEvent(tx, {
      type: "user.password.reset",
      level: "warn",
      message: `password of ${found.role === "admin" ? "admin" : "user"} ${found.username} reset from the admin CLI`,
      actorId: ctx.actor?.id,
      userId: found.id,
      metadata: { username: found.username, password_generated: generated, via: "cli" },
    });
    return row!;
  });
  return { user: renderUser(user, ctx.clock()), ...(generated ? { password: next } : {}) };
}
