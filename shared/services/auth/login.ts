import { Forbidden, InvalidCredentials } from "../../errors.js";
import type { AuthDeps, ServiceContext } from "../context.js";
import { recordEvent } from "../events.js";
import { checkPassword } from "./password-gate.js";
import type { LoginInput } from "./schemas.js";

export async function login({
  ctx,
  input,
  path,
}: {
  ctx: ServiceContext & AuthDeps;
  input: LoginInput;
  path: string;
}) {
  const outcome = await checkPassword(ctx, { username: input.username, password: input.password, endpoint: path });
  if (!outcome.ok) {
    await recordEvent(ctx.db, {
      type: "auth.login.failed",
      level: "warn",
      message: "login failed",
      // No actor before the password is proven; the user id only once it was.
      userId: outcome.reason === "invalid_credentials" ? null : outcome.user.id,
      metadata: { username: input.username, ip: ctx.ip, reason: outcome.reason },
    });
    if (outcome.reason === "invalid_credentials") throw InvalidCredentials();
    throw Forbidden(
      outcome.reason,
      outcome.reason === "account_disabled" ? "account is disabled" : "account has expired",
    );
  }
  const { user } = outcome;
  const { token, expiresIn } = await ctx.tokens.issue(user);
  await recordEvent(ctx.db, {
    type: "auth.login.succeeded",
    message: `user ${user.username} logged in`,
    actorId: user.id,
    userId: user.id,
    metadata: { username: user.username, ip: ctx.ip, path },
  });
  return { token, role: user.role, username: user.username, expires_in: expiresIn };
}
