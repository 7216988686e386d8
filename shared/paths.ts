import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The package root (where package.json lives), whether this file runs from sources (tsx, vitest)
 * or from `dist/`. Migrations and other assets are found from here, never from the cwd.
 */
export const projectRoot: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "drizzle"))) return dir;
    dir = dirname(dir);
  }
  throw new Error("cannot locate the cloud-cli-proxy package root");
})();

export const migrationsFolder = join(projectRoot, "drizzle", "migrations");
