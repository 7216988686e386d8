import { and, eq, isNull, ne, sql } from "drizzle-orm";
import { hashPassword, verifyPassword } from "../../crypto/passwords.js";
import type { Db } from "../../db/client.js";
import { users } from "../../db/schema/index.js";
import type { Logger } from "../../logger.js";
import { recordEvent } from "../events.js";

export class AdminSeedError extends Error {}

/**
 * Make the admin account match the environment (docs/api.md#admin-seed). The caller holds the
 * migration advisory lock, so replicas starting together do this once.
 */
export async function seedAdmin(
  db: Db,
  logger: Logger,
  opts: { username: string; password: string; now: Date },
): Promise<{ created: boolean; passwordUpdated: boolean }> {
  return db.transaction(async (tx) => {
    const [existing] = await tx
      .select()
      .from(users)
      .where(and(eq(users.username, opts.username), isNull(users.deletedAt)))
      .for("update");
    let created = false;
    let passwordUpdated = false;
    let changed = false;
    let adminId: string;
    if (!existing) {
      const [row] = await tx
        .insert(users)
        .values({ username: opts.username, role: "admin", status: "active", passwordHash: await hashPassword(opts.password) })
        .returning();
      adminId = row!.id;
      created = changed = true;
    } else {
      if (existing.role !== "admin") {
        throw new AdminSeedError(
          `ADMIN_USERNAME ${opts.username} belongs to an existing user account; choose another admin username`,
        );
      }
      adminId = existing.id;
      const passwordOk = await verifyPassword(existing.passwordHash, opts.password);
      if (!passwordOk || existing.status !== "active" || existing.expiresAt !== null) {
        await tx
          .update(users)
          .set({
            status: "active",
            expiresAt: null,
            updatedAt: opts.now,
            ...(passwordOk
              ? {}
              : { passwordHash: await hashPassword(opts.password), tokenVersion: sql`${users.tokenVersion} + 1` }),
          })
          .where(eq(users.id, existing.id));
        passwordUpdated = !passwordOk;
        changed = true;
      }
    }
    // Any other admin account (from an earlier ADMIN_USERNAME) is disabled and its tokens revoked.
    const demoted = await tx
      .update(users)
      .set({ status: "disabled", tokenVersion: sql`${users.tokenVersion} + 1`, updatedAt: opts.now })
      .where(and(eq(users.role, "admin"), ne(users.id, adminId), eq(users.status, "active"), isNull(users.deletedAt)))
      .returning({ id: users.id });
    if (demoted.length) changed = true;
    if (changed) {
      await recordEvent(tx, {
        type: "system.admin.seeded",
        message: `admin account ${opts.username} seeded`,
        userId: adminId,
        metadata: { username: opts.username, created, password_updated: passwordUpdated },
      });
      logger.info({ username: opts.username, created, passwordUpdated }, "admin account seeded");
    }
    return { created, passwordUpdated };
  });
}
