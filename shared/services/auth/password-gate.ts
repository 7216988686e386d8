import type { LimitKey } from "../../auth/rate-limit.js";
import { verifyDummy, verifyPassword } from "../../crypto/passwords.js";
import type { UserRow } from "../../db/schema/index.js";
import { RateLimited } from "../../errors.js";
import type { AuthDeps, ServiceContext } from "../context.js";
import { recordEvent } from "../events.js";
import { findLiveUserByUsername } from "../users/lookup.js";
import { isExpired } from "../users/render.js";

export type PasswordOutcome =
  | { ok: true; user: UserRow }
  | { ok: false; reason: "invalid_credentials" }
  | { ok: false; reason: "account_disabled" | "account_expired"; user: UserRow };

/**
 * The shared password check behind login, bootstrap sessions, entry auth and change-password
 * (docs/api.md#login, docs/api.md#limits): rate limits first (even a correct password is refused while blocked),
 * then a constant-shape verification that reveals nothing about the account before the password
 * is proven, then the account state.
 */
export async function checkPassword(
  ctx: ServiceContext & AuthDeps,
  args: { username: string; password: string; endpoint: string; user?: UserRow | undefined },
): Promise<PasswordOutcome> {
  // Failures count per (account, client address) and per address — never per account alone:
  // otherwise anyone could lock the real owner out by failing ten times from anywhere (issue 10
  // docs/api.md#users). An attacker is stopped by their own address's counters; the owner elsewhere is not.
  const accountKey: LimitKey = { type: "user", value: accountAtAddress(args.username, ctx.ip) };
  const keys: LimitKey[] = [accountKey, { type: "ip", value: ctx.ip }];
  // Count the attempt before checking the password, atomically with the limit check: with a
  // separate check and count, every request of a concurrent burst passed the check before the
  // first failure was counted (unlimited guesses per burst). An attempt that turns out not to be
  // a failure is released below.
  const blocked = await ctx.limiter.acquire(keys);
  if (blocked) {
    if (blocked.firstRejection) {
      await recordEvent(ctx.db, {
        type: "auth.rate_limited",
        level: "warn",
        message: `too many failed password attempts (${blocked.key.type})`,
        metadata: {
          key_type: blocked.key.type,
          ...(blocked.key.type === "user" ? { username: args.username } : {}),
          ip: ctx.ip,
          endpoint: args.endpoint,
        },
      });
    }
    throw RateLimited(blocked.retryAfterSeconds);
  }
  let user: UserRow | undefined;
  let ok: boolean;
  try {
    user = args.user ?? (await findLiveUserByUsername(ctx.db, args.username));
    // Bounded process-wide: the failure counters cap guesses per address, this caps the CPU and
    // memory a flood from many addresses can take (429 auth_busy beyond the queue).
    ok = await ctx.passwordWork.run(() =>
      user ? verifyPassword(user.passwordHash, args.password) : verifyDummy(args.password),
    );
  } catch (err) {
    // Not a password failure (e.g. Postgres unavailable): give the attempt back, keep the cause.
    await ctx.limiter.release(keys).catch((releaseErr: unknown) =>
      ctx.logger.warn({ err: String(releaseErr) }, "could not release a rate-limit attempt"),
    );
    throw err;
  }
  if (!user || !ok) return { ok: false, reason: "invalid_credentials" }; // already counted
  // A proven password resets the username counter and is not a failure for the IP counter
  // (also when the account is disabled or expired: that is not a password failure, docs/api.md#login step 5).
  await ctx.limiter.reset(accountKey);
  await ctx.limiter.release([{ type: "ip", value: ctx.ip }]);
  if (user.status === "disabled") return { ok: false, reason: "account_disabled", user };
  if (isExpired(user, ctx.clock())) return { ok: false, reason: "account_expired", user };
  return { ok: true, user };
}

/** The failure-counter key of an account as tried from one client address. */
export const accountAtAddress = (username: string, ip: string) => `${username.toLowerCase()}@${ip}`;
