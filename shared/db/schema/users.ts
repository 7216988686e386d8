import { sql } from "drizzle-orm";
import { check, index, integer, pgTable, text, uniqueIndex } from "drizzle-orm/pg-core";
import { recordingModes } from "./sessions.js";
import { createdAt, id, ts, updatedAt } from "./columns.js";

export const userRoles = ["admin", "user"] as const;
export const userStatuses = ["active", "disabled"] as const;

export const users = pgTable(
  "users",
  {
    id: id(),
    username: text().notNull(),
    role: text({ enum: userRoles }).notNull().default("user"),
    status: text({ enum: userStatuses }).notNull().default("active"),
    expiresAt: ts(),
    /** The `expires_at` value the expiry scanner has already enforced (once per expiry value). */
    expiryEnforcedFor: ts(),
    passwordHash: text().notNull(),
    /** Bumped to revoke every token issued before (docs/api.md#token-checks). */
    tokenVersion: integer().notNull().default(1),
    /** Soft delete while the user's hosts are torn down; the row goes when the last one is gone. */
    deletedAt: ts(),
    /**
     * Idle policy for this user's host (docs/idle.md): stop after this many minutes idle; 0 =
     * never; null = the global IDLE_STOP_MINUTES. A host's own setting wins over this.
     */
    idleStopMinutes: integer(),
    /** CPU (percent of the host's limit) under which the host counts as idle; null = IDLE_CPU_PERCENT. */
    idleCpuPercent: integer(),
    /** SSH session recording (docs/sessions.md#recording); null = the global SESSION_RECORDING. */
    sessionRecording: text({ enum: recordingModes }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    // Usernames are unique case-insensitively among users that are not deleted, so a deleted
    // user's name is free at once.
    uniqueIndex("users_username_live_uq").on(sql`lower(${t.username})`).where(sql`${t.deletedAt} is null`),
    index("users_created_at_idx").on(t.createdAt.desc(), t.id.desc()),
    check("users_role_ck", sql`${t.role} in ('admin','user')`),
    check("users_status_ck", sql`${t.status} in ('active','disabled')`),
    check("users_idle_minutes_ck", sql`${t.idleStopMinutes} between 0 and 525600`),
    check("users_idle_cpu_ck", sql`${t.idleCpuPercent} between 0 and 100`),
    check("users_recording_ck", sql`${t.sessionRecording} in ('off','output','input')`),
  ],
);

export type UserRow = typeof users.$inferSelect;
