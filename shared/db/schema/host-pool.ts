import { sql } from "drizzle-orm";
import { check, index, integer, numeric, pgTable, text, uniqueIndex, uuid } from "drizzle-orm/pg-core";
import { createdAt, ts, updatedAt } from "./columns.js";

export const hostPoolStates = ["warming", "ready", "claimed", "draining"] as const;

/**
 * The warm pool (docs/architecture.md#warm-pool): running gateway + host pairs the worker creates
 * ahead of demand, for one shape (the create defaults, the current images). The id is the id the
 * host will have: container, volume and disk names are already the host's, so a claim moves no
 * object. `warming` → `ready` (worker) → `claimed` (the create transaction, which copies the keys
 * into the new hosts row) → row deleted (the create task, once the host runs). `draining`: being
 * removed (image change, a broken member). Members are never users' hosts: no list shows them.
 */
export const hostPool = pgTable(
  "host_pool",
  {
    id: uuid().primaryKey(),
    engineId: text().notNull().default("default"),
    state: text({ enum: hostPoolStates }).notNull().default("warming"),
    /** The claimed host's short id: the gateway (whose UTS namespace the host shares) is named by it. */
    shortId: text().notNull(),
    // The shape: a create matches only a member of exactly these values.
    memoryLimitMb: integer().notNull(),
    cpuLimit: numeric({ precision: 6, scale: 2, mode: "number" }).notNull(),
    pidsLimit: integer().notNull(),
    /** null = the engine's HOST_DISK_LIMIT_MB, as a create without `disk_limit_mb` stores it. */
    diskLimitMb: integer(),
    timezone: text().notNull(),
    /** The size the home was really made with (HOST_DISK_LIMIT_MB then; 0 = uncapped): a change drains. */
    homeDiskMb: integer().notNull(),
    /** Docker image ids of the member's containers; a change of the engine's current ids drains. */
    imageId: text(),
    gatewayImageId: text(),
    /** Key pairs as on hosts; the private halves are bound to this table (shared/crypto/secrets.ts). */
    hostKeyPublic: text().notNull(),
    hostKeyPrivateEnc: text().notNull(),
    internalKeyPublic: text().notNull(),
    internalKeyPrivateEnc: text().notNull(),
    managementAddress: text(),
    /** When blocked mode's isolation check passed on this gateway (null: checks not configured). */
    isolationVerifiedAt: ts(),
    claimedAt: ts(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex("host_pool_short_id_uq").on(t.shortId),
    index("host_pool_engine_state_idx").on(t.engineId, t.state),
    check("host_pool_state_ck", sql`${t.state} in ('warming','ready','claimed','draining')`),
    check("host_pool_short_id_ck", sql`${t.shortId} ~ '^[a-z0-9]{6}$'`),
  ],
);

export type HostPoolRow = typeof hostPool.$inferSelect;
