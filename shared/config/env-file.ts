import { existsSync, readFileSync } from "node:fs";
import { parseEnv } from "node:util";

/**
 * The process environment, completed by an optional `.env` file: variables already set in the
 * environment always win, so a service manager's settings override a developer's `.env`.
 */
export function loadEnvironment(
  env: NodeJS.ProcessEnv = process.env,
  file = ".env",
): Record<string, string | undefined> {
  const merged: Record<string, string | undefined> = {};
  if (existsSync(file)) {
    const parsed = parseEnv(readFileSync(file, "utf8")) as Record<string, string>;
    Object.assign(merged, parsed);
  }
  for (const [k, v] of Object.entries(env)) if (v !== undefined) merged[k] = v;
  return merged;
}
