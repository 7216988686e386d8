import { z } from "zod";

/** Raised when the environment does not satisfy a process's schema. Names the first bad variable. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    readonly reason: string,
  ) {
    super(`configuration: ${variable} ${reason}`);
    this.name = "ConfigError";
  }
}

/**
 * Parse `source` with a schema whose keys are environment variable names. Empty strings count as
 * unset, so `FOO=` in a `.env` falls back to the default.
 */
export function parseConfig<S extends z.ZodObject>(
  schema: S,
  source: Record<string, string | undefined>,
): z.output<S> {
  const input: Record<string, string | undefined> = {};
  for (const key of Object.keys(schema.shape)) {
    const v = source[key];
    input[key] = v === undefined || v.trim() === "" ? undefined : v;
  }
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const variable = String(issue.path[0] ?? "environment");
  const reason = input[variable] === undefined ? "is required" : `is invalid: ${issue.message}`;
  throw new ConfigError(variable, reason);
}
