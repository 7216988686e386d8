import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { inject } from "vitest";
import { TEST_DB_PREFIX, adminDatabaseUrl, databaseUrlFor } from "./db-names.js";

export { TEST_DB_PREFIX, adminDatabaseUrl, databaseUrlFor };

/** Named after the run (see test/global-setup.ts), so the run's teardown drops it even if a file does not. */
function freshDatabaseName(): string {
  const runPid = /^ccp_t_(\d+)_/.exec(inject("templateDatabase"))?.[1] ?? "0";
  return `${TEST_DB_PREFIX}${runPid}_${randomBytes(6).toString("hex")}`;
}

const dropper = (env: Record<string, string | undefined>, name: string) => async () => {
  const a = postgres(adminDatabaseUrl(env), { max: 1, onnotice: () => {} });
  await a.unsafe(`drop database if exists "${name}" with (force)`);
  await a.end();
};

/** A fresh database with no tables at all (e.g. a restore target); drop it with the returned function. */
export async function createEmptyDatabase(
  env: Record<string, string | undefined>,
): Promise<{ name: string; url: string; drop: () => Promise<void> }> {
  const name = freshDatabaseName();
  const admin = postgres(adminDatabaseUrl(env), { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database "${name}"`);
  } finally {
    await admin.end();
  }
  return { name, url: databaseUrlFor(env, name), drop: dropper(env, name) };
}

/** A fresh database cloned from the migrated template; drop it with the returned function. */
export async function cloneTemplateDatabase(
  env: Record<string, string | undefined>,
): Promise<{ name: string; url: string; drop: () => Promise<void> }> {
  const template = inject("templateDatabase");
  const name = freshDatabaseName();
  const admin = postgres(adminDatabaseUrl(env), { max: 1, onnotice: () => {} });
  try {
    // Two files cloning at the same instant can collide on the template's lock: retry briefly.
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.unsafe(`create database "${name}" template "${template}"`);
        break;
      } catch (err) {
        if (attempt >= 20) throw err;
        await new Promise((r) => setTimeout(r, 100 + attempt * 50));
      }
    }
  } finally {
    await admin.end();
  }
  return {
    name,
    url: databaseUrlFor(env, name),
    drop: dropper(env, name),
  };
}
