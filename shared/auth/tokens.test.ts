import { generateKeyPair, SignJWT, decodeJwt, decodeProtectedHeader } from "jose";
import { describe, expect, it } from "vitest";
import { createTokenService, JWT_AUDIENCE, JWT_ISSUER } from "./tokens.js";

const SECRET = "unit-test-secret-that-is-at-least-32-bytes!";
const OTHER_SECRET = "another-unit-test-secret-of-at-least-32-bytes";
const T0 = 1_780_000_000; // a fixed instant (seconds); no test reads the wall clock
const USER = { id: "5d3c2b1a-7e6f-4a1b-9c8d-0e1f2a3b4c5d", role: "user" as const, tokenVersion: 3 };

/** A service whose clock the test moves by hand. */
function service(ttlSeconds = 100) {
  let nowSec = T0;
  const svc = createTokenService({ secret: SECRET, ttlSeconds, now: () => new Date(nowSec * 1000) });
  return {
    svc,
    at(sec: number) {
      nowSec = sec;
    },
  };
}

const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

/** A token signed by us, not by the service, so every claim and header can be chosen. */
async function craft(
  claims: Record<string, unknown>,
  opts: { alg?: string; secret?: string; omit?: string[] } = {},
): Promise<string> {
  const payload: Record<string, unknown> = {
    iss: JWT_ISSUER,
    aud: JWT_AUDIENCE,
    sub: USER.id,
    role: USER.role,
    tv: USER.tokenVersion,
    iat: T0,
    exp: T0 + 100,
    jti: "0b8a4c5e-2f3d-4e6f-8a9b-0c1d2e3f4a5b",
    ...claims,
  };
  for (const k of opts.omit ?? []) delete payload[k];
  return new SignJWT(payload)
    .setProtectedHeader({ alg: opts.alg ?? "HS256", typ: "JWT" })
    .sign(new TextEncoder().encode(opts.secret ?? SECRET));
}

describe("createTokenService", () => {
  it("issues an HS256 JWT with the claims of docs/api.md#tokens and verifies it", async () => {
    const { svc } = service(86400);
    const { token, expiresIn } = await svc.issue(USER);
    expect(expiresIn).toBe(86400);
    expect(token.split(".")).toHaveLength(3);
    // The header is exactly this object: no kid, no extra parameters.
    expect(JSON.parse(Buffer.from(token.split(".")[0]!, "base64url").toString())).toStrictEqual({
      alg: "HS256",
      typ: "JWT",
    });
    expect(decodeProtectedHeader(token)).toStrictEqual({ alg: "HS256", typ: "JWT" });
    const claims = decodeJwt(token);
    expect(Object.keys(claims).sort()).toEqual(["aud", "exp", "iat", "iss", "jti", "role", "sub", "tv"]);
    expect(claims).toMatchObject({
      iss: "cloud-cli-proxy",
      aud: "cloud-cli-proxy",
      sub: USER.id,
      role: "user",
      tv: 3,
      iat: T0,
      exp: T0 + 86400,
    });
    expect(claims.jti).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(await svc.verify(token)).toStrictEqual({ sub: USER.id, role: "user", tv: 3, iat: T0, exp: T0 + 86400 });
  });

  it("gives every token a fresh jti", async () => {
    const { svc } = service();
    const a = decodeJwt((await svc.issue(USER)).token);
    const b = decodeJwt((await svc.issue(USER)).token);
    expect(a.jti).not.toBe(b.jti);
  });

  it("accepts a token until exp and rejects it when exp == now (no leeway)", async () => {
    const { svc, at } = service(100);
    const { token } = await svc.issue(USER);
    at(T0 + 99);
    expect(await svc.verify(token)).not.toBeNull();
    at(T0 + 100);
    expect(await svc.verify(token)).toBeNull();
    at(T0 + 101);
    expect(await svc.verify(token)).toBeNull();
  });

  it("accepts iat up to 60 s in the future and rejects 61 s", async () => {
    const { svc } = service();
    expect(await svc.verify(await craft({ iat: T0 + 60, exp: T0 + 1000 }))).not.toBeNull();
    expect(await svc.verify(await craft({ iat: T0 + 61, exp: T0 + 1000 }))).toBeNull();
    expect(await svc.verify(await craft({ iat: T0 + 3600, exp: T0 + 7200 }))).toBeNull();
  });

  it("accepts a well-formed token crafted with the same key (so the rejections below mean something)", async () => {
    const { svc } = service();
    expect(await svc.verify(await craft({}))).toStrictEqual({
      sub: USER.id,
      role: "user",
      tv: 3,
      iat: T0,
      exp: T0 + 100,
    });
  });

  it("pins the algorithm: HS384, HS512, none and RS256 are rejected", async () => {
    const { svc } = service();
    expect(await svc.verify(await craft({}, { alg: "HS384" }))).toBeNull();
    expect(await svc.verify(await craft({}, { alg: "HS512" }))).toBeNull();
    const payload = b64url({ iss: JWT_ISSUER, aud: JWT_AUDIENCE, sub: USER.id, role: "user", tv: 3, iat: T0, exp: T0 + 100 });
    const none = b64url({ alg: "none", typ: "JWT" });
    expect(await svc.verify(`${none}.${payload}.`)).toBeNull();
    expect(await svc.verify(`${none}.${payload}.AAAA`)).toBeNull();
    // An HS256 signature under a header that says `none` is still not accepted.
    const good = await craft({});
    expect(await svc.verify(`${none}.${payload}.${good.split(".")[2]}`)).toBeNull();
    const { privateKey } = await generateKeyPair("RS256");
    const rs = await new SignJWT({ iss: JWT_ISSUER, aud: JWT_AUDIENCE, sub: USER.id, role: "user", tv: 3, iat: T0, exp: T0 + 100 })
      .setProtectedHeader({ alg: "RS256", typ: "JWT" })
      .sign(privateKey);
    expect(await svc.verify(rs)).toBeNull();
  });

  it("rejects another signing key, a wrong issuer or audience, and missing or ill-typed claims", async () => {
    const { svc } = service();
    expect(await svc.verify(await craft({}, { secret: OTHER_SECRET }))).toBeNull();
    expect(await svc.verify(await craft({ iss: "someone-else" }))).toBeNull();
    expect(await svc.verify(await craft({ iss: "Cloud-Cli-Proxy" }))).toBeNull();
    expect(await svc.verify(await craft({ aud: "someone-else" }))).toBeNull();
    expect(await svc.verify(await craft({}, { omit: ["exp"] }))).toBeNull();
    expect(await svc.verify(await craft({}, { omit: ["iat"] }))).toBeNull();
    expect(await svc.verify(await craft({}, { omit: ["sub"] }))).toBeNull();
    expect(await svc.verify(await craft({}, { omit: ["iss"] }))).toBeNull();
    expect(await svc.verify(await craft({}, { omit: ["aud"] }))).toBeNull();
    expect(await svc.verify(await craft({}, { omit: ["tv"] }))).toBeNull();
    expect(await svc.verify(await craft({}, { omit: ["role"] }))).toBeNull();
    expect(await svc.verify(await craft({ role: "root" }))).toBeNull();
    expect(await svc.verify(await craft({ tv: "3" }))).toBeNull();
    expect(await svc.verify(await craft({ tv: 3.5 }))).toBeNull();
  });

  it("rejects a token from a service with another secret (secret rotation)", async () => {
    const { svc } = service();
    const rotated = createTokenService({ secret: OTHER_SECRET, ttlSeconds: 100, now: () => new Date(T0 * 1000) });
    const { token } = await svc.issue(USER);
    expect(await svc.verify(token)).not.toBeNull();
    expect(await rotated.verify(token)).toBeNull();
  });

  it("rejects garbage without throwing", async () => {
    const { svc } = service();
    for (const t of ["", "garbage", "a.b", "a.b.c", "...", "eyJ.eyJ.eyJ", `${await craft({})}x`, " " + (await craft({}))]) {
      expect(await svc.verify(t), t).toBeNull();
    }
  });

  it("rejects a tampered payload", async () => {
    const { svc } = service();
    const { token } = await svc.issue(USER);
    const [h, , s] = token.split(".");
    const forged = b64url({ ...decodeJwt(token), role: "admin" });
    expect(await svc.verify(`${h}.${forged}.${s}`)).toBeNull();
  });
});
