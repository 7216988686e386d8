import { hashPassword } from "../../crypto/passwords.js";
import { generatePassword } from "../../crypto/random.js";
import { users } from "../../db/schema/index.js";
import { isUniqueViolation } from "../../db/pg-errors.js";
import { Conflict, Invalid } from "../../errors.js";
import type { ServiceContext } from "../context.js";
import { recordEvent } from "../events.js";
import { renderUser } from "./render.js";
import type { CreateUserInput } from "./schemas.js";

export async function createUser({ ctx, input }: { ctx: ServiceContext; input: CreateUserInput }) {
  const now = ctx.clock();
  if (input.expires_at && input.expires_at.getTime() <= now.getTime()) {
    throw Invalid([{ field: "expires_at", message: "must be in the future" }]);
  }
  const generated = input.password == null;
  const password = input.password ?? generatePassword();
  const passwordHash = await hashPassword(password);
  try {
    const user = await ctx.db.transaction(async (tx) => {
      const [row] = await tx
        .insert(users)
        .values({
          username: input.username,
          role: "user",
          status: "active",
          expiresAt: input.expires_at ?? null,
          idleStopMinutes: input.idle_stop_minutes ?? null,
          idleCpuPercent: input.idle_cpu_percent ?? null,
          passwordHash,
          tokenVersion: 1,
        })
        .returning();
      await recordEvent(tx, {
        type: "user.created",
        message: `user ${row!.username} created`,
        actorId: ctx.actor?.id,
        userId: row!.id,
        metadata: {
          username: row!.username,
          expires_at: row!.expiresAt?.toISOString() ?? null,
          password_generated: generated,
        },
      });
      return row!;
    });
    return { user: renderUser(user, now), ...(generated ? { password } : {}) };
  } catch (err) {
    if (isUniqueViolation(err, "users_username_live_uq")) {
      throw Conflict("username_taken", `username ${input.username} already exists`);
    }
    throw err;
  }
}
