import { and, eq, isNull, sql } from "drizzle-orm";
import type { TokenService } from "../../auth/tokens.js";
import type { DbOrTx } from "../../db/client.js";
import { users } from "../../db/schema/index.js";
import { isUuid } from "../../validation.js";
import type { Actor } from "../context.js";
import { isExpired } from "../users/render.js";

/**
 * Resolve a bearer token to the acting user, re-checking the user row on every request
 * (docs/api.md#token-checks): exists and not deleted, token version, role, active, not expired.
 * Returns null for anything that does not pass, so callers answer a uniform 401.
 */
export async function authenticateToken(
  deps: { db: DbOrTx; tokens: TokenService; clock: () => Date },
  token: string,
): Promise<Actor | null> {
  const claims = await deps.tokens.verify(token);
  return claims ? actorForClaims(deps, claims) : null;
}

/**
 * The user-row half of the check, for credentials that carry the same binding as a token without
 * being one (a desktop session: user id, role and token version; api/vnc/desktop-sessions.ts).
 */
export async function actorForClaims(
  deps: { db: DbOrTx; clock: () => Date },
  claims: { sub: string; role: string; tv: number },
): Promise<Actor | null> {
  if (!isUuid(claims.sub)) return null;
  const [user] = await userForCheck(deps.db).execute({ id: claims.sub });
  if (!user) return null;
  if (user.tokenVersion !== claims.tv || user.role !== claims.role) return null;
  if (user.status !== "active" || isExpired(user, deps.clock())) return null;
  return { id: user.id, role: user.role, username: user.username };
}

/**
 * The one query every authenticated request runs, prepared once per database handle: only the
 * columns the check reads (not the password hash), and no SQL rebuilt per request (rebuilding
 * it for every query was 16% of a user's host read, issue 12).
 */
const prepared = new WeakMap<DbOrTx, ReturnType<typeof prepareUserForCheck>>();
function userForCheck(db: DbOrTx) {
  let q = prepared.get(db);
  if (!q) prepared.set(db, (q = prepareUserForCheck(db)));
  return q;
}
function prepareUserForCheck(db: DbOrTx) {
  return db
    .select({
      id: users.id,
      username: users.username,
      role: users.role,
      status: users.status,
      tokenVersion: users.tokenVersion,
      expiresAt: users.expiresAt,
    })
    .from(users)
    .where(and(eq(users.id, sql.placeholder("id")), isNull(users.deletedAt)))
    .prepare("auth_user_for_check");
}
