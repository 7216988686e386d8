/** Postgres SQLSTATE codes we branch on. Never match on message text. */
export const PG_UNIQUE_VIOLATION = "23505";
export const PG_FOREIGN_KEY_VIOLATION = "23503";

interface PgLikeError {
  code?: unknown;
  constraint_name?: unknown;
  constraint?: unknown;
  cause?: unknown;
}

/** Finds the Postgres error inside drizzle's wrappers (DrizzleQueryError keeps it as `cause`). */
function findPgError(err: unknown): PgLikeError | undefined {
  let cur: unknown = err;
  for (let i = 0; i < 5 && cur && typeof cur === "object"; i++) {
    const e = cur as PgLikeError;
    if (typeof e.code === "string" && /^[0-9A-Z]{5}$/.test(e.code)) return e;
    cur = e.cause;
  }
  return undefined;
}

export function pgErrorCode(err: unknown): string | undefined {
  return findPgError(err)?.code as string | undefined;
}

export function pgConstraint(err: unknown): string | undefined {
  const e = findPgError(err);
  const name = e?.constraint_name ?? e?.constraint;
  return typeof name === "string" ? name : undefined;
}

export function isUniqueViolation(err: unknown, constraint?: string): boolean {
  return pgErrorCode(err) === PG_UNIQUE_VIOLATION && (constraint === undefined || pgConstraint(err) === constraint);
}

export function isForeignKeyViolation(err: unknown): boolean {
  return pgErrorCode(err) === PG_FOREIGN_KEY_VIOLATION;
}
