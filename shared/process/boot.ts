import { ConfigError } from "../config/parse.js";

/**
 * Parse a process's configuration once, or exit naming the first missing or invalid variable.
 */
export function parseOrExit<T>(parse: () => T, processName: string): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${processName}: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}
