import { execFileSync } from "node:child_process";
import type { TestProject } from "vitest/node";
import postgres from "postgres";
import { runMigrations } from "../drizzle/migrate.js";
import { loadEnvironment } from "../shared/config/env-file.js";
import { createDatabase } from "../shared/db/client.js";
import { TEST_DB_PREFIX, adminDatabaseUrl, databaseUrlFor } from "../shared/test/db-names.js";

declare module "vitest" {
  export interface ProvidedContext {
    templateDatabase: string;
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * Once per test run: a migrated template database that every test file clones (fast, isolated).
 * Names carry the run's pid, so databases left by an interrupted run are recognised and dropped
 * while those of a concurrent run are left alone.
 */
/** Whether the egress lab (test/lab) is running; false when there is no Docker engine. */
function labRunning(): boolean {
  try {
    return execFileSync("docker", ["ps", "-q", "--filter", "label=cloud-cli-proxy.lab=true"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim() !== "";
  } catch {
    return false;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const env = loadEnvironment();
  // The egress suites start the lab when they need it (test/lab/up.sh); a lab this run started is
  // removed at the end (docs/egress.md#lab), one a developer had running is left alone.
  const labWasRunning = labRunning();
  const admin = postgres(adminDatabaseUrl(env), { max: 1, onnotice: () => {} });
  const existing = await admin<{ datname: string }[]>`
    select datname from pg_database where datname like ${`${TEST_DB_PREFIX}%`}`;
  for (const { datname } of existing) {
    const pid = Number(/^ccp_t_(\d+)_/.exec(datname)?.[1]);
    if (!pid || !alive(pid)) await admin.unsafe(`drop database if exists "${datname}" with (force)`);
  }
  const template = `${TEST_DB_PREFIX}${process.pid}_template`;
  await admin.unsafe(`drop database if exists "${template}" with (force)`);
  await admin.unsafe(`create database "${template}"`);
  const db = createDatabase(databaseUrlFor(env, template), { max: 1 });
  await runMigrations(db);
  await db.close();
  await admin.end();
  project.provide("templateDatabase", template);
  return async () => {
    if (!labWasRunning && labRunning()) {
      try {
        execFileSync("bash", ["test/lab/down.sh"], { stdio: "ignore", timeout: 120_000 });
      } catch {
        // best effort: a leftover lab is harmless and the next up.sh reuses it
      }
    }
    const again = postgres(adminDatabaseUrl(env), { max: 1, onnotice: () => {} });
    const mine = await again<{ datname: string }[]>`
      select datname from pg_database where datname like ${`${TEST_DB_PREFIX}${process.pid}_%`}`;
    for (const { datname } of mine) await again.unsafe(`drop database if exists "${datname}" with (force)`);
    await again.end();
  };
}
