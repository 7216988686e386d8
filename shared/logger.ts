import pino, { type DestinationStream, type Logger } from "pino";

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
  };
  if (destination) return pino(options, destination);
  if (opts.format === "pretty") {
    return pino({ ...options, transport: { target: "pino-pretty", options: { colorize: true } } });
  }
  return pino(options);
}
