import { type ErrorKind, ServiceError } from "../../errors.js";

/**
 * A ServiceError whose envelope carries extra top-level fields the access scripts read (e.g.
 * `task_error_code` on a failed handoff, docs/api.md#bootstrap). The API adds `fields` after the
 * standard keys; they never hold secrets.
 */
export class AccessError extends ServiceError {
  constructor(
    kind: ErrorKind,
    code: string,
    message: string,
    extra: ServiceError["extra"] = {},
    readonly fields: Record<string, string | number | null> = {},
  ) {
    super(kind, code, message, extra);
    this.name = "AccessError";
  }
}

/** Bootstrap session: wrong username or password, one answer for both (docs/api.md#bootstrap). */
export const AuthInvalid = () => new ServiceError("invalid_credentials", "auth_invalid", "invalid username or password");

/** A task the bootstrap endpoints do not show: unknown, not a UUID, or of another origin. */
export const TaskNotFound = () => new ServiceError("not_found", "task_not_found", "task not found");

/** Text the scripts print: printable ASCII only, without `"` or `\`, bounded. */
export function scriptSafeText(s: string, max = 300): string {
  return s.replace(/["\\]/g, "'").replace(/[^\x20-\x7e]/g, "?").slice(0, max);
}
