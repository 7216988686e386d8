import pino, { type DestinationStream, type Logger } from "pino";
import { currentLogContext } from "./log-context.js";

export type { Logger };

/**
 * Secrets never reach a log line. We never log bodies; these paths are the belt to that brace
 * (tested in shared/logger.test.ts).
 */
export const REDACT_PATHS = [
  "password",
  "*.password",
  "new_password",
  "*.new_password",
  "old_password",
  "*.old_password",
  "ssh_password",
  "*.ssh_password",
  "ssh_pass",
  "*.ssh_pass",
  "token",
  "*.token",
  "ticket",
  "*.ticket",
  "ssh_ticket",
  "*.ssh_ticket",
  "private_key",
  "*.private_key",
  "privateKey",
  "*.privateKey",
  "passwordHash",
  "*.passwordHash",
  "password_hash",
  "*.password_hash",
  "secret",
  "*.secret",
  "uuid",
  "*.uuid",
  "wg_private_key",
  "*.wg_private_key",
  "wg_preshared_key",
  "*.wg_preshared_key",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "headers.cookie",
  "*.headers.authorization",
  "*.headers.cookie",
  "cookie",
  "*.cookie",
];

/** The keys a logger (a child) binds itself; a child's bindings never change after it is made. */
const boundKeys = new WeakMap<object, ReadonlySet<string>>();
function keysBoundBy(logger: Logger): ReadonlySet<string> {
  let keys = boundKeys.get(logger);
  if (!keys) {
    keys = new Set(Object.keys(logger.bindings()));
    boundKeys.set(logger, keys);
  }
  return keys;
}

/**
 * The current operation's fields (shared/log-context.ts) on every line, whichever logger writes
 * it. A key the logger already binds (a child made with `request_id`) is left to the binding:
 * pino would print the key twice otherwise. Keys of the call's own object win over the context
 * (pino's default mixinMergeStrategy), so they are never doubled either.
 */
function contextMixin(_mergeObject: object, _level: number, logger: Logger): object {
  const ctx = currentLogContext();
  if (!ctx) return {};
  const bound = keysBoundBy(logger);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(ctx)) if (!bound.has(k)) out[k] = v;
  return out;
}

export function createLogger(
  opts: { level?: string; format?: "json" | "pretty"; name?: string },
  destination?: DestinationStream,
): Logger {
  const options: pino.LoggerOptions = {
    level: opts.level ?? "info",
    base: opts.name ? { proc: opts.name } : {},
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    mixin: contextMixin,
  };
  if (destination) return pino(options, destination);
  if (opts.format === "pretty") {
    return pino({ ...options, transport: { target: "pino-pretty", options: { colorize: true } } });
  }
  return pino(options);
}
