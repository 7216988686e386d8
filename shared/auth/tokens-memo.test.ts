import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { createTokenService, JWT_AUDIENCE, JWT_ISSUER } from "./tokens.js";

/**
 * The memo of verified tokens (shared/auth/tokens.ts, docs/api.md#tokens): a remembered token gets
 * exactly the answer a fresh verification would give at that instant. The clock is moved by hand.
 */
const SECRET = "unit-test-secret-that-is-at-least-32-bytes!";
const T0 = 1_780_000_000;
const USER = { id: "5d3c2b1a-7e6f-4a1b-9c8d-0e1f2a3b4c5d", role: "user" as const, tokenVersion: 3 };

function service(opts: { ttlSeconds?: number; memoSize?: number } = {}) {
  let nowSec = T0;
  const svc = createTokenService({ secret: SECRET, ttlSeconds: opts.ttlSeconds ?? 100, now: () => new Date(nowSec * 1000), memoSize: opts.memoSize });
  return { svc, at: (sec: number) => (nowSec = sec) };
}

const sign = (claims: Record<string, unknown>) =>
  new SignJWT({ iss: JWT_ISSUER, aud: JWT_AUDIENCE, sub: USER.id, role: "user", tv: 3, iat: T0, exp: T0 + 100, ...claims })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(new TextEncoder().encode(SECRET));

describe("verified-token memo", () => {
  it("answers a remembered token like a fresh verification, and hands out copies", async () => {
    const { svc } = service();
    const { token } = await svc.issue(USER);
    const first = await svc.verify(token);
    const again = await svc.verify(token);
    expect(again).toStrictEqual(first);
    expect(again).toStrictEqual({ sub: USER.id, role: "user", tv: 3, iat: T0, exp: T0 + 100 });
    // A caller mutating its claims must not change what the next caller is told.
    again!.role = "admin" as never;
    expect((await svc.verify(token))!.role).toBe("user");
  });

  it("still ends a remembered token at exp (no leeway) and keeps refusing it", async () => {
    const { svc, at } = service({ ttlSeconds: 100 });
    const { token } = await svc.issue(USER);
    expect(await svc.verify(token)).not.toBeNull();
    at(T0 + 99);
    expect(await svc.verify(token)).not.toBeNull();
    at(T0 + 100);
    expect(await svc.verify(token)).toBeNull();
    at(T0 + 101);
    expect(await svc.verify(token)).toBeNull();
  });

  it("re-checks iat against the clock when the clock goes back", async () => {
    const { svc, at } = service();
    const token = await sign({ iat: T0, exp: T0 + 1000 });
    expect(await svc.verify(token)).not.toBeNull();
    at(T0 - 61);
    expect(await svc.verify(token)).toBeNull();
    at(T0 - 60);
    expect(await svc.verify(token)).not.toBeNull();
  });

  it("honours nbf on every call (such tokens are never remembered)", async () => {
    const { svc, at } = service();
    const token = await sign({ nbf: T0 + 10, exp: T0 + 1000 });
    expect(await svc.verify(token)).toBeNull();
    at(T0 + 10);
    expect(await svc.verify(token)).not.toBeNull();
    at(T0 + 5);
    expect(await svc.verify(token)).toBeNull();
  });

  it("is per service: a token another secret signed stays refused, and a new secret starts empty", async () => {
    const a = service().svc;
    const { token } = await a.issue(USER);
    expect(await a.verify(token)).not.toBeNull();
    const rotated = createTokenService({ secret: "another-unit-test-secret-of-at-least-32-bytes", ttlSeconds: 100, now: () => new Date(T0 * 1000) });
    expect(await rotated.verify(token)).toBeNull();
  });

  it("stays bounded: past memoSize the oldest is forgotten and verified afresh, with the same answer", async () => {
    const { svc } = service({ memoSize: 2 });
    const tokens = await Promise.all([1, 2, 3].map((tv) => svc.issue({ ...USER, tokenVersion: tv }).then((t) => t.token)));
    for (const t of tokens) expect(await svc.verify(t)).not.toBeNull();
    for (const [i, t] of tokens.entries()) expect((await svc.verify(t))!.tv).toBe(i + 1);
  });

  it("does not remember refusals: a tampered copy of a remembered token is still refused", async () => {
    const { svc } = service();
    const { token } = await svc.issue(USER);
    expect(await svc.verify(token)).not.toBeNull();
    const [h, p, s] = token.split(".");
    const flipped = s!.startsWith("A") ? `B${s!.slice(1)}` : `A${s!.slice(1)}`;
    expect(await svc.verify(`${h}.${p}.${flipped}`)).toBeNull();
    expect(await svc.verify(`${token} `)).toBeNull();
    expect(await svc.verify(token)).not.toBeNull();
  });
});
