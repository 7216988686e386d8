import { randomUUID } from "node:crypto";
import { SignJWT, jwtVerify } from "jose";
import type { UserRow } from "../db/schema/index.js";

export const JWT_ISSUER = "cloud-cli-proxy";
export const JWT_AUDIENCE = "cloud-cli-proxy";

export interface TokenClaims {
  sub: string;
  role: "admin" | "user";
  tv: number;
  iat: number;
  exp: number;
}

export interface TokenService {
  issue(user: Pick<UserRow, "id" | "role" | "tokenVersion">): Promise<{ token: string; expiresIn: number }>;
  /** Signature, algorithm, issuer, audience and lifetime only; the caller checks the user row. */
  verify(token: string): Promise<TokenClaims | null>;
}

/**
 * How many verified tokens a service remembers (see `verify`): a few hundred bytes each, so the
 * bound keeps the memo under a few MiB however many sessions are active; beyond it the oldest
 * entry goes first.
 */
export const VERIFIED_TOKEN_MEMO_SIZE = 10_000;

export function createTokenService(opts: {
  secret: string;
  ttlSeconds: number;
  now?: () => Date;
  /** Tests lower it to see eviction; production keeps VERIFIED_TOKEN_MEMO_SIZE. */
  memoSize?: number;
}): TokenService {
  const key = new TextEncoder().encode(opts.secret);
  const now = () => Math.floor((opts.now?.() ?? new Date()).getTime() / 1000);
  const memoSize = opts.memoSize ?? VERIFIED_TOKEN_MEMO_SIZE;
  /**
   * Tokens whose signature, algorithm, issuer, audience and claim types this service has already
   * checked, by the token string (docs/api.md#tokens). Those checks are a pure function of the
   * token and the key, so remembering them changes no answer; what depends on the time (`exp`,
   * `iat`) is checked again on every call (`timely`), and revocation never lived here: the caller
   * re-reads the user row on every request (docs/api.md#token-checks). What it saves is the HMAC
   * and jose's parsing, 7% of a user's host read before the other issue-12 changes and a larger
   * share after them. Only successes are remembered, so garbage cannot evict anyone; a new secret
   * means a new service and an empty memo.
   */
  const memo = new Map<string, TokenClaims>();
  const timely = (c: TokenClaims, t: number) => c.iat <= t + 60 && c.exp > t;
  const remember = (token: string, c: TokenClaims) => {
    if (memo.size >= memoSize) memo.delete(memo.keys().next().value!);
    memo.set(token, c);
  };
  return {
    async issue(user) {
      const iat = now();
      const token = await new SignJWT({ role: user.role, tv: user.tokenVersion })
        .setProtectedHeader({ alg: "HS256", typ: "JWT" })
        .setIssuer(JWT_ISSUER)
        .setAudience(JWT_AUDIENCE)
        .setSubject(user.id)
        .setIssuedAt(iat)
        .setExpirationTime(iat + opts.ttlSeconds)
        .setJti(randomUUID())
        .sign(key);
      return { token, expiresIn: opts.ttlSeconds };
    },
    async verify(token) {
      const known = memo.get(token);
      if (known) {
        if (timely(known, now())) return { ...known };
        // Expired (or the clock went back past its iat): forget it; a later call re-verifies.
        memo.delete(token);
        return null;
      }
      if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token)) return null;
      try {
        const { payload } = await jwtVerify(token, key, {
          algorithms: ["HS256"], // pinned: `none` and every other algorithm are rejected
          issuer: JWT_ISSUER,
          audience: JWT_AUDIENCE,
          clockTolerance: 0,
          requiredClaims: ["sub", "exp", "iat"],
          currentDate: opts.now?.(),
        });
        const t = now();
        if (typeof payload.iat !== "number" || payload.iat > t + 60) return null;
        if (typeof payload.exp !== "number" || payload.exp <= t) return null;
        if (payload.role !== "admin" && payload.role !== "user") return null;
        if (typeof payload.tv !== "number" || !Number.isInteger(payload.tv)) return null;
        if (typeof payload.sub !== "string") return null;
        const claims: TokenClaims = { sub: payload.sub, role: payload.role, tv: payload.tv, iat: payload.iat, exp: payload.exp };
        // jose also checks `nbf` against the clock; we never issue one, so a token carrying it is
        // verified afresh every time rather than taught to `timely`.
        if (payload.nbf === undefined) remember(token, claims);
        return { ...claims };
      } catch {
        return null;
      }
    },
  };
}
