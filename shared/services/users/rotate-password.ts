import { eq, sql } from "drizzle-orm";
import { hashPassword } from "../../crypto/passwords.js";
import { generatePassword } from "../../crypto/random.js";
import { users } from "../../db/schema/index.js";
import type { ServiceContext } from "../context.js";
import { recordEvent } from "../events.js";
import { assertNotAdmin } from "./guards.js";
import { getLiveUser } from "./lookup.js";

export async function rotateUserPassword({ ctx, userId }: { ctx: ServiceContext; userId: string }) {
  const password = generatePassword();
  const passwordHash = await hashPassword(password);
  await ctx.db.transaction(async (tx) => {
    const user = await getLiveUser(tx, userId, { forUpdate: true });
    assertNotAdmin(user, "rotate the password of");
    await tx
      .update(users)
      .set({ passwordHash, tokenVersion: sql`${users.tokenVersion} + 1`, updatedAt: ctx.clock() })
      .where(eq(users.id, user.id));
    await recordEvent(tx, {
      type: "user.password.rotated",
      message: `password of user ${user.username} rotated`,
      actorId: ctx.actor?.id,
      userId: user.id,
      metadata: { username: user.username },
    });
  });
  return { new_password: password };
}
