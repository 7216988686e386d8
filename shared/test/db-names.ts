// No vitest import here: test/global-setup.ts runs outside the test workers.

/** Test databases are named `ccp_t_<pid of the vitest run>_<suffix>` (see test/global-setup.ts). */
export const TEST_DB_PREFIX = "ccp_t_";

/** The URL tests use to create and drop their databases: DATABASE_URL (role with CREATEDB). */
export function adminDatabaseUrl(env: Record<string, string | undefined>): string {
  const url = env.TEST_DATABASE_URL ?? env.DATABASE_URL;
  if (!url) throw new Error("DATABASE_URL is not set; run `npm run setup` first");
  return url;
}

export function databaseUrlFor(env: Record<string, string | undefined>, name: string): string {
  const u = new URL(adminDatabaseUrl(env));
  u.pathname = `/${name}`;
  return u.toString();
}

