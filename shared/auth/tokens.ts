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

export function createTokenService(opts: { secret: string; ttlSeconds: number; now?: () => Date }): TokenService {
  const key = new TextEncoder().encode(opts.secret);
  const now = () => Math.floor((opts.now?.() ?? new Date()).getTime() / 1000);
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
        return { sub: payload.sub, role: payload.role, tv: payload.tv, iat: payload.iat, exp: payload.exp };
      } catch {
        return null;
      }
    },
  };
}
