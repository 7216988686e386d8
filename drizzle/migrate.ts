import { readFileSync } from "node:fs";
import { join } from "node:path";
import { migrate } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import type { Database } from "../shared/db/client.js";
import { migrationsFolder } from "../shared/paths.js";

/** Advisory lock key serialising migrations and admin seeding across api replicas. */
export const MIGRATION_LOCK_KEY = 0x63637001;

/**
 * Apply the committed SQL migrations. Runs under a Postgres advisory lock so replicas starting
 * together apply them once; `then` runs under the same lock (the api seeds the admin there).
 */
export async function runMigrations(database: Database, then?: () => Promise<void>): Promise<void> {
  // The lock lives on a connection of its own, so the pool (even a pool of one) stays free for
  // the migration and seeding queries.
  const lock = postgres(database.url, { max: 1, onnotice: () => {}, connect_timeout: 5 });
  try {
    await lock`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
    try {
      await migrate(database.db, { migrationsFolder });
      if (then) await then();
    } finally {
      await lock`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
    }
  } finally {
    await lock.end({ timeout: 5 });
  }
}

function expectedMigrationCount(): number {
  const journal = JSON.parse(readFileSync(join(migrationsFolder, "meta", "_journal.json"), "utf8")) as {
    entries: unknown[];
  };
  return journal.entries.length;
}

/** True when every committed migration has been applied (worker and sshd wait for this). */
export async function schemaIsCurrent(database: Database): Promise<boolean> {
  try {
    const rows = await database.sql<{ n: number }[]>`select count(*)::int as n from drizzle.__drizzle_migrations`;
    return (rows[0]?.n ?? 0) >= expectedMigrationCount();
  } catch {
    return false;
  }
}

export async function waitForSchema(
  database: Database,
  opts: { signal?: AbortSignal; intervalMs?: number; onWait?: () => void } = {},
): Promise<void> {
  let warned = false;
  while (!(await schemaIsCurrent(database))) {
    if (opts.signal?.aborted) throw new Error("aborted while waiting for the database schema");
    if (!warned) {
      opts.onWait?.();
      warned = true;
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 1000));
  }
}
