import { Writable } from "node:stream";
import { decodeJwt, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../shared/logger.js";
import { AdminSeedError, seedAdmin } from "../../shared/services/auth/seed-admin.js";
import {
  type ApiHarness,
  createApiHarness,
  findSecrets,
  TEST_ADMIN_PASSWORD,
  TEST_JWT_SECRET,
  type TestResponse,
  type TestUser,
  uniqueName,
} from "../../shared/test/api-harness.js";

/**
 * Authentication (docs/api.md#auth, acceptance items 12–28). Counters are per username and per
 * client IP, so every test that produces failures uses an IP of its own. No test sleeps: expiry is
 * simulated by moving rows in the database, and Redis windows are never waited for.
 */

let h: ApiHarness;
/** Every password used here: it must never appear in a response or a log line. */
const passwords = new Set<string>([TEST_ADMIN_PASSWORD]);
/** One-time reveals (rotate-password): legitimately in one response, never in a log line. */
const revealed = new Set<string>();

let ipSeq = 0;
/** A client address no other test uses, so per-IP counters never leak between tests. */
const freshIp = () => {
  ipSeq++;
  return `10.77.${Math.floor(ipSeq / 250)}.${(ipSeq % 250) + 1}`;
};

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ISS = "cloud-cli-proxy";
const ANOTHER_SECRET = "another-secret-that-is-at-least-32-bytes";

async function newUser(opts: { expires_at?: string | null } = {}): Promise<TestUser> {
  const u = await h.createUser(opts);
  passwords.add(u.password);
  return u;
}

const loginAt = (path: "/v1/auth/login" | "/v1/admin/login", username: string, password: string, ip: string) =>
  h.request("POST", path, { body: { username, password }, ip });

/** An authenticated admin-only request: 200 means the token passed every check. */
const adminList = (token: string, extra: { headers?: Record<string, string> } = {}) =>
  h.request("GET", "/v1/admin/users", { token, ...extra });
/** An authenticated route open to role user. */
const selfKeys = (token: string) => h.request("GET", "/v1/user/ssh-keys", { token });

function expectUnauthorized(res: TestResponse, label = "") {
  expect(res.status, `${label} ${res.text}`).toBe(401);
  expect(res.body, label).toStrictEqual({ error: expect.any(String), code: "unauthorized" });
  expect(res.headers.get("www-authenticate") ?? "", label).toMatch(/^Bearer/);
}

async function userRow(id: string) {
  const [row] = await h.database.sql<{ token_version: number; status: string; role: string; updated_at: string }[]>`
    select token_version, status, role, updated_at from users where id = ${id}`;
  return row;
}

async function adminRow() {
  const [row] = await h.database.sql<{ id: string; token_version: number; status: string }[]>`
    select id, token_version, status from users where username = 'admin' and deleted_at is null`;
  return row!;
}

async function eventsOf(type: string, filter: Record<string, string>) {
  const rows = await h.database.sql<
    { type: string; level: string; actor_id: string | null; user_id: string | null; metadata: Record<string, unknown> }[]
  >`select type, level, actor_id, user_id, metadata from events where type = ${type} and metadata @> ${JSON.stringify(filter)}::jsonb order by created_at, id`;
  return rows;
}

/** Move a user's expiry into the past directly in the database (no waiting for the clock). */
async function expireNow(id: string) {
  await h.database.sql`update users set expires_at = now() - interval '1 second' where id = ${id}`;
}

const inAnHour = () => new Date(Date.now() + 3600_000).toISOString();

beforeAll(async () => {
  h = await createApiHarness();
});

afterAll(async () => {
  await h?.close();
});

describe("login (docs/api.md#login)", () => {
  it("answers the admin's environment credentials with a well-formed HS256 JWT (item 12)", async () => {
    const ip = freshIp();
    const res = await h.login("admin", TEST_ADMIN_PASSWORD, ip);
    expect(res.status, res.text).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(["expires_in", "role", "token", "username"]);
    expect(res.body).toMatchObject({ role: "admin", username: "admin", expires_in: 86400 });
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(res.headers.get("cache-control")).toBe("no-store");

    const token: string = res.body.token;
    const parts = token.split(".");
    expect(parts).toHaveLength(3);
    for (const p of parts) expect(p).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(JSON.parse(Buffer.from(parts[0]!, "base64url").toString("utf8"))).toStrictEqual({ alg: "HS256", typ: "JWT" });

    const admin = await adminRow();
    const claims = decodeJwt(token);
    expect(Object.keys(claims).sort()).toEqual(["aud", "exp", "iat", "iss", "jti", "role", "sub", "tv"]);
    expect(claims.iss).toBe(ISS);
    expect(claims.aud).toBe(ISS);
    expect(claims.sub).toBe(admin.id);
    expect(claims.role).toBe("admin");
    expect(claims.tv).toBe(admin.token_version);
    expect(Number.isInteger(claims.iat)).toBe(true);
    expect(Math.abs(claims.iat! - Date.now() / 1000)).toBeLessThan(300);
    expect(claims.exp).toBe(claims.iat! + 86400);
    expect(claims.jti).toMatch(UUID);

    const list = await adminList(token);
    expect(list.status, list.text).toBe(200);
  });

  it("takes expires_in and the token lifetime from JWT_TTL_SECONDS", async () => {
    const short = await h.withConfig({ JWT_TTL_SECONDS: "120" });
    const res = await short.login("admin", TEST_ADMIN_PASSWORD, freshIp());
    expect(res.status, res.text).toBe(200);
    expect(res.body.expires_in).toBe(120);
    const claims = decodeJwt(res.body.token);
    expect(claims.exp).toBe(claims.iat! + 120);
  });

  it("logs in a user with role user", async () => {
    const u = await newUser();
    const res = await h.login(u.username, u.password, freshIp());
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ role: "user", username: u.username, expires_in: 86400 });
    const claims = decodeJwt(res.body.token);
    expect(claims).toMatchObject({ sub: u.id, role: "user", tv: 1 });
    expect((await selfKeys(res.body.token)).status).toBe(200);
  });

  it("lowercases the username (ASCII) before the lookup", async () => {
    const res = await h.login("ADMIN", TEST_ADMIN_PASSWORD, freshIp());
    expect(res.status, res.text).toBe(200);
    expect(res.body.username).toBe("admin");
    const u = await newUser();
    const mixed = u.username.replace(/[a-z]/g, (c, i: number) => (i % 2 ? c.toUpperCase() : c));
    expect(mixed).not.toBe(u.username);
    const r2 = await h.login(mixed, u.password, freshIp());
    expect(r2.status, r2.text).toBe(200);
    expect(r2.body.username).toBe(u.username);
  });

  it("answers an unknown username and a wrong password with byte-identical 401 bodies (item 14)", async () => {
    const ip = freshIp();
    const u = await newUser();
    const unknown = await h.login(uniqueName("nobody"), "whatever-password-1", ip);
    const wrong = await h.login(u.username, "whatever-password-1", ip);
    passwords.add("whatever-password-1");
    expect(unknown.status, unknown.text).toBe(401);
    expect(wrong.status, wrong.text).toBe(401);
    expect(unknown.body).toStrictEqual({ error: expect.any(String), code: "invalid_credentials" });
    expect(wrong.text).toBe(unknown.text);
    // Nor may the headers differ (apart from the per-request id).
    const headerView = (r: TestResponse) =>
      [...r.headers.entries()].filter(([k]) => k !== "x-request-id").sort(([a], [b]) => a.localeCompare(b));
    expect(headerView(wrong)).toEqual(headerView(unknown));
  });

  it("does not reveal a disabled account before the password is proven; the right password → 403 account_disabled (item 15)", async () => {
    const ip = freshIp();
    const u = await newUser();
    const patch = await h.request("PATCH", `/v1/admin/users/${u.id}`, { token: await h.adminToken(), body: { status: "disabled" } });
    expect(patch.status, patch.text).toBe(200);
    const unknown = await h.login(uniqueName("nobody"), "not-the-password", ip);
    const wrong = await h.login(u.username, "not-the-password", ip);
    passwords.add("not-the-password");
    expect(wrong.status, wrong.text).toBe(401);
    expect(wrong.text).toBe(unknown.text);
    const right = await h.login(u.username, u.password, ip);
    expect(right.status, right.text).toBe(403);
    expect(right.body).toStrictEqual({ error: expect.any(String), code: "account_disabled" });
  });

  it("does not reveal an expired account before the password is proven; the right password → 403 account_expired (item 16)", async () => {
    const ip = freshIp();
    const u = await newUser({ expires_at: inAnHour() });
    expect((await h.login(u.username, u.password, ip)).status).toBe(200);
    await expireNow(u.id);
    const unknown = await h.login(uniqueName("nobody"), "not-the-password", ip);
    const wrong = await h.login(u.username, "not-the-password", ip);
    expect(wrong.status, wrong.text).toBe(401);
    expect(wrong.text).toBe(unknown.text);
    const right = await h.login(u.username, u.password, ip);
    expect(right.status, right.text).toBe(403);
    expect(right.body).toStrictEqual({ error: expect.any(String), code: "account_expired" });
  });

  it("reports disabled before expired when both apply", async () => {
    const u = await newUser({ expires_at: inAnHour() });
    await h.request("PATCH", `/v1/admin/users/${u.id}`, { token: await h.adminToken(), body: { status: "disabled" } });
    await expireNow(u.id);
    const res = await h.login(u.username, u.password, freshIp());
    expect(res.status, res.text).toBe(403);
    expect(res.body.code).toBe("account_disabled");
  });

  it("does not count a correct password on a disabled account as a failure", async () => {
    // More correct-password attempts from one IP than the per-IP limit (30) allows failures.
    const ip = freshIp();
    const u = await newUser();
    await h.request("PATCH", `/v1/admin/users/${u.id}`, { token: await h.adminToken(), body: { status: "disabled" } });
    for (let i = 0; i < 31; i++) {
      const res = await h.login(u.username, u.password, ip);
      expect(res.status, `attempt ${i + 1}: ${res.text}`).toBe(403);
    }
  });

  it("answers the same on /v1/admin/login as on /v1/auth/login (item 13)", async () => {
    const u = await newUser();
    const d = await newUser();
    await h.request("PATCH", `/v1/admin/users/${d.id}`, { token: await h.adminToken(), body: { status: "disabled" } });
    const cases: [string, unknown][] = [
      ["unknown user", { username: uniqueName("nobody"), password: "not-the-password" }],
      ["wrong password", { username: u.username, password: "not-the-password" }],
      ["disabled", { username: d.username, password: d.password }],
      ["missing password", { username: u.username }],
      ["extra field", { username: u.username, password: u.password, role: "admin" }],
    ];
    for (const [label, body] of cases) {
      const a = await h.request("POST", "/v1/auth/login", { body, ip: freshIp() });
      const b = await h.request("POST", "/v1/admin/login", { body, ip: freshIp() });
      expect(a.status, `${label}: ${a.text}`).toBeGreaterThanOrEqual(400);
      expect(b.status, `${label}: ${b.text}`).toBe(a.status);
      expect(b.text, label).toBe(a.text);
    }
    const a = await loginAt("/v1/auth/login", u.username, u.password, freshIp());
    const b = await loginAt("/v1/admin/login", u.username, u.password, freshIp());
    expect(a.status, a.text).toBe(200);
    expect(b.status, b.text).toBe(200);
    expect(Object.keys(b.body).sort()).toEqual(Object.keys(a.body).sort());
    expect({ ...b.body, token: "" }).toStrictEqual({ ...a.body, token: "" });
    const ca = decodeJwt(a.body.token);
    const cb = decodeJwt(b.body.token);
    expect({ ...cb, iat: 0, exp: 0, jti: "" }).toStrictEqual({ ...ca, iat: 0, exp: 0, jti: "" });
    expect((await selfKeys(b.body.token)).status).toBe(200);
  });

  describe("validation (400 before anything else)", () => {
    const post = (body: unknown, ip = freshIp()) => h.request("POST", "/v1/auth/login", { body, ip });

    it("lists every missing field", async () => {
      const res = await post({});
      expect(res.status, res.text).toBe(400);
      expect(res.body.code).toBe("invalid_request");
      const fields = (res.body.details as { field: string }[]).map((d) => d.field).sort();
      expect(fields).toEqual(["password", "username"]);
      const onlyUser = await post({ username: "admin" });
      expect(onlyUser.status, onlyUser.text).toBe(400);
      expect(onlyUser.body.details).toEqual([{ field: "password", message: expect.any(String) }]);
    });

    it("rejects an unknown field such as role", async () => {
      const res = await post({ username: "admin", password: TEST_ADMIN_PASSWORD, role: "admin" });
      expect(res.status, res.text).toBe(400);
      expect(res.body.code).toBe("invalid_request");
      expect(res.body.details).toContainEqual({ field: "role", message: "unknown field" });
    });

    it("rejects an empty username and an empty password", async () => {
      const a = await post({ username: "", password: "x" });
      expect(a.status, a.text).toBe(400);
      expect(a.body.details.map((d: { field: string }) => d.field)).toEqual(["username"]);
      const b = await post({ username: "admin", password: "" });
      expect(b.status, b.text).toBe(400);
      expect(b.body.details.map((d: { field: string }) => d.field)).toEqual(["password"]);
    });

    it("bounds username at 128 and password at 1024 characters", async () => {
      const long = "p".repeat(1025);
      passwords.add(long);
      const tooLong = await post({ username: "admin", password: long });
      expect(tooLong.status, tooLong.text).toBe(400);
      expect(tooLong.body.details.map((d: { field: string }) => d.field)).toEqual(["password"]);
      const max = "q".repeat(1024);
      passwords.add(max);
      const atMax = await post({ username: uniqueName("nobody"), password: max });
      expect(atMax.status, atMax.text).toBe(401);
      const longName = await post({ username: "u".repeat(129), password: "x" });
      expect(longName.status, longName.text).toBe(400);
      expect(longName.body.details.map((d: { field: string }) => d.field)).toEqual(["username"]);
      const maxName = await post({ username: "u".repeat(128), password: "x" });
      expect(maxName.status, maxName.text).toBe(401);
    });

    it("rejects non-string fields, non-JSON and non-object bodies", async () => {
      const num = await post({ username: 42, password: ["x"] });
      expect(num.status, num.text).toBe(400);
      expect(num.body.details.map((d: { field: string }) => d.field).sort()).toEqual(["password", "username"]);
      const notJson = await h.request("POST", "/v1/auth/login", { rawBody: "username=admin", ip: freshIp() });
      expect(notJson.status, notJson.text).toBe(400);
      expect(notJson.body.details[0].field).toBe("body");
      const arr = await h.request("POST", "/v1/auth/login", { rawBody: "[]", ip: freshIp() });
      expect(arr.status, arr.text).toBe(400);
      const empty = await h.request("POST", "/v1/auth/login", { rawBody: "", ip: freshIp() });
      expect(empty.status, empty.text).toBe(400);
    });

    it("does not count invalid bodies as password failures", async () => {
      const ip = freshIp();
      for (let i = 0; i < 35; i++) {
        const res = await post({ username: "admin", password: "" }, ip);
        expect(res.status, res.text).toBe(400);
      }
      const ok = await h.login("admin", TEST_ADMIN_PASSWORD, ip);
      expect(ok.status, ok.text).toBe(200);
    });
  });
});

describe("rate limiting (docs/api.md#limits)", () => {
  it("blocks a username from an address after 10 wrong passwords there, even with the right one; other usernames from that IP still work (item 17)", async () => {
    const ip = freshIp();
    const u = await newUser();
    const v = await newUser();
    for (let i = 0; i < 10; i++) {
      const res = await h.login(u.username, `wrong-${i}`, ip);
      expect(res.status, `attempt ${i + 1}: ${res.text}`).toBe(401);
    }
    const blocked = await h.login(u.username, u.password, ip);
    expect(blocked.status, blocked.text).toBe(429);
    expect(Object.keys(blocked.body).sort()).toEqual(["code", "error", "retry_after"]);
    expect(blocked.body.code).toBe("rate_limited");
    expect(typeof blocked.body.retry_after).toBe("number");
    const retryAfter = blocked.headers.get("retry-after");
    expect(retryAfter).toMatch(/^\d+$/);
    expect(Number(retryAfter)).toBe(blocked.body.retry_after);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(retryAfter)).toBeLessThanOrEqual(900);

    // The key is (lowercased username, address): the legacy path from that address is blocked too…
    const legacy = await loginAt("/v1/admin/login", u.username, u.password, ip);
    expect(legacy.status, legacy.text).toBe(429);
    const upper = await h.login(u.username.toUpperCase(), u.password, ip);
    expect(upper.status, upper.text).toBe(429);
    // …but the owner signing in from anywhere else is not (issue 10 §3: no lockout of the victim).
    const elsewhere = await h.login(u.username, u.password, freshIp());
    expect(elsewhere.status, elsewhere.text).toBe(200);

    const other = await h.login(v.username, v.password, ip);
    expect(other.status, other.text).toBe(200);

    // Written once per key per window, however many rejections follow.
    const events = await eventsOf("auth.rate_limited", { username: u.username });
    expect(events).toHaveLength(1);
    expect(events[0]!.level).toBe("warn");
    expect(events[0]!.actor_id).toBeNull();
    expect(events[0]!.metadata).toStrictEqual({ key_type: "user", username: u.username, ip, endpoint: "/v1/auth/login" });
  });

  it("counts failures on both login paths against the same username and address", async () => {
    const u = await newUser();
    const ip = freshIp();
    for (let i = 0; i < 10; i++) {
      const path = i % 2 ? "/v1/admin/login" : "/v1/auth/login";
      const res = await loginAt(path, u.username, "wrong-password", ip);
      expect(res.status, `${path}: ${res.text}`).toBe(401);
    }
    const res = await loginAt("/v1/auth/login", u.username, u.password, ip);
    expect(res.status, res.text).toBe(429);
  });

  it("blocks an unknown username the same way (no existence oracle)", async () => {
    const ip = freshIp();
    const name = uniqueName("ghost");
    for (let i = 0; i < 10; i++) expect((await h.login(name, "wrong-password", ip)).status).toBe(401);
    const res = await h.login(name, "wrong-password", ip);
    expect(res.status, res.text).toBe(429);
    expect(res.body.code).toBe("rate_limited");
  });

  it("resets the username counter on a successful login", async () => {
    const ip = freshIp();
    const u = await newUser();
    for (let i = 0; i < 9; i++) expect((await h.login(u.username, "wrong-password", ip)).status).toBe(401);
    const ok = await h.login(u.username, u.password, ip);
    expect(ok.status, ok.text).toBe(200);
    // Without the reset these would be failures 10–19 and most of them 429.
    for (let i = 0; i < 9; i++) {
      const res = await h.login(u.username, "wrong-password", ip);
      expect(res.status, `after reset, failure ${i + 1}: ${res.text}`).toBe(401);
    }
    // The counting goes on: the 10th failure since the reset is still answered, the next is blocked.
    expect((await h.login(u.username, "wrong-password", ip)).status).toBe(401);
    const res = await h.login(u.username, u.password, ip);
    expect(res.status, res.text).toBe(429);
  });

  it("resets only the username counter on success, not the IP counter", async () => {
    const ip = freshIp();
    const u = await newUser();
    const key = (type: string, value: string) => `${h.config.REDIS_PREFIX}:authfail:${type}:${value}`;
    for (let i = 0; i < 5; i++) expect((await h.login(u.username, "wrong-password", ip)).status).toBe(401);
    const account = `${u.username}@${ip}`;
    expect(await h.deps.redis.get(key("user", account))).toBe("5");
    expect(await h.deps.redis.get(key("ip", ip))).toBe("5");
    expect((await h.login(u.username, u.password, ip)).status).toBe(200);
    expect(await h.deps.redis.exists(key("user", account))).toBe(0);
    expect(await h.deps.redis.get(key("ip", ip))).toBe("5");
    // A success from a clean IP leaves no counter behind.
    const clean = freshIp();
    expect((await h.login(u.username, u.password, clean)).status).toBe(200);
    expect(await h.deps.redis.exists(key("ip", clean), key("user", `${u.username}@${clean}`))).toBe(0);
  });

  it("blocks an IP after 30 failures across usernames, for any username; another IP still works (item 18)", async () => {
    const ip = freshIp();
    const u = await newUser();
    for (let i = 0; i < 30; i++) {
      // 3 failures each on 10 names: no username counter gets anywhere near its limit.
      const res = await h.login(`nobody-${i % 10}-${ip}`, "wrong-password", ip);
      expect(res.status, `failure ${i + 1}: ${res.text}`).toBe(401);
    }
    const blocked = await h.login(u.username, u.password, ip);
    expect(blocked.status, blocked.text).toBe(429);
    expect(blocked.body.code).toBe("rate_limited");
    expect(Number(blocked.headers.get("retry-after"))).toBe(blocked.body.retry_after);
    expect((await h.login("admin", TEST_ADMIN_PASSWORD, ip)).status).toBe(429);
    const fine = await h.login(u.username, u.password, freshIp());
    expect(fine.status, fine.text).toBe(200);

    const events = await eventsOf("auth.rate_limited", { key_type: "ip", ip });
    expect(events).toHaveLength(1);
    expect(events[0]!.metadata).toStrictEqual({ key_type: "ip", ip, endpoint: "/v1/auth/login" });
  });

  it("keys the IP counter on the TCP peer: a forged X-Forwarded-For does not escape it", async () => {
    const ip = freshIp();
    for (let i = 0; i < 30; i++) {
      const res = await h.request("POST", "/v1/auth/login", {
        body: { username: `nobody-${i % 10}-${ip}`, password: "wrong-password" },
        headers: { "x-forwarded-for": `203.0.113.${i + 1}` },
        ip,
      });
      expect(res.status, res.text).toBe(401);
    }
    const res = await h.request("POST", "/v1/auth/login", {
      body: { username: "admin", password: TEST_ADMIN_PASSWORD },
      headers: { "x-forwarded-for": "203.0.113.200" },
      ip,
    });
    expect(res.status, res.text).toBe(429);
  });

  it("answers a rate-limited client's invalid body with 400 (validation comes first, docs/api.md#evaluation-order)", async () => {
    const ip = freshIp();
    const name = uniqueName("ghost");
    for (let i = 0; i < 10; i++) await h.login(name, "wrong-password", ip);
    expect((await h.login(name, "wrong-password", ip)).status).toBe(429);
    const res = await h.request("POST", "/v1/auth/login", { body: { username: name, password: "" }, ip });
    expect(res.status, res.text).toBe(400);
  });

  it("cannot be outrun by concurrent guesses", async () => {
    // A check-then-count limiter lets every request of a burst past the check before any failure
    // is counted, which would give an attacker unlimited guesses per burst.
    const u = await newUser();
    const ip = freshIp();
    const results = await Promise.all(
      Array.from({ length: 25 }, (_, i) => h.login(u.username, `burst-guess-${i}`, ip)),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 401).length, statuses.join(",")).toBeLessThanOrEqual(10);
    expect(statuses.every((s) => s === 401 || s === 429), statuses.join(",")).toBe(true);
    expect((await h.login(u.username, u.password, ip)).status).toBe(429);
  });

  it("counts a wrong old_password at change-password against the username at that address", async () => {
    const ip = freshIp();
    const u = await newUser();
    for (let i = 0; i < 10; i++) {
      const res = await h.request("POST", "/v1/user/change-password", {
        token: u.token,
        ip,
        body: { old_password: `wrong-${i}`, new_password: "a-brand-new-password" },
      });
      expect(res.status, `attempt ${i + 1}: ${res.text}`).toBe(401);
      expect(res.body).toStrictEqual({ error: expect.any(String), code: "invalid_credentials" });
    }
    const cp = await h.request("POST", "/v1/user/change-password", {
      token: u.token,
      ip,
      body: { old_password: u.password, new_password: "a-brand-new-password" },
    });
    expect(cp.status, cp.text).toBe(429);
    const login = await h.login(u.username, u.password, ip);
    expect(login.status, login.text).toBe(429);
    const elsewhere = await h.login(u.username, u.password, freshIp());
    expect(elsewhere.status, elsewhere.text).toBe(200);
    // The password was not changed and the token was not revoked.
    expect((await selfKeys(u.token)).status).toBe(200);
    const events = await eventsOf("auth.rate_limited", { username: u.username });
    expect(events).toHaveLength(1);
    expect(events[0]!.metadata).toMatchObject({ key_type: "user", endpoint: "/v1/user/change-password" });
  });
});

describe("lockouts cannot be turned against their victim (issue 10 §3)", () => {
  it("ten failures for the admin from 127.0.0.2 do not lock the admin out of 127.0.0.1", async () => {
    // The reproduction: before, the 11th request — the real admin, right password, other address —
    // was answered 429 with retry_after 900.
    const attacker = freshIp();
    for (let i = 0; i < 12; i++) {
      const res = await h.login("admin", `guess-${i}`, attacker);
      expect(res.status, `guess ${i + 1}: ${res.text}`).toBe(i < 10 ? 401 : 429);
    }
    const owner = await h.login("admin", TEST_ADMIN_PASSWORD, freshIp());
    expect(owner.status, owner.text).toBe(200);
    // The attacker stays limited, even with the right password.
    expect((await h.login("admin", TEST_ADMIN_PASSWORD, attacker)).status).toBe(429);
  });

  it("an attacker spraying many accounts from one address is stopped by the address counter", async () => {
    const attacker = freshIp();
    const victims = await Promise.all([newUser(), newUser(), newUser()]);
    let refused = 0;
    for (let i = 0; i < 40; i++) {
      const res = await h.login(victims[i % 3]!.username, `spray-${i}`, attacker);
      if (res.status === 429) refused++;
      else expect(res.status, res.text).toBe(401);
    }
    expect(refused).toBe(40 - 30); // AUTH_FAIL_MAX_PER_IP
    for (const v of victims) expect((await h.login(v.username, v.password, freshIp())).status).toBe(200);
  });

  it("bounds argon2 work under a flood: never more than AUTH_HASH_MAX_CONCURRENT at once, the excess 429 auth_busy", async () => {
    const f = await h.withConfig({ AUTH_HASH_MAX_CONCURRENT: "2", AUTH_HASH_MAX_QUEUED: "3" });
    // 40 concurrent guesses from 40 addresses (each under its own limits).
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => f.login(uniqueName("flood"), "wrong-password", freshIp())),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.every((s) => s === 401 || s === 429), statuses.join(",")).toBe(true);
    const busy = results.filter((r) => r.status === 429);
    expect(busy.length, statuses.join(",")).toBeGreaterThan(0);
    for (const r of busy) {
      expect(r.body).toStrictEqual({ error: expect.any(String), code: "auth_busy", retry_after: 1 });
    }
    expect(f.deps.passwordWork.stats.peakActive).toBe(2);
    expect(f.deps.passwordWork.stats.refused).toBe(busy.length);
    // Once the flood has passed, sign-ins work again.
    const u = await newUser();
    expect((await f.login(u.username, u.password, freshIp())).status).toBe(200);
  });
});

describe("login events (docs/api.md#events)", () => {
  it("writes auth.login.succeeded and auth.login.failed with their metadata", async () => {
    const ip = freshIp();
    const u = await newUser();
    expect((await loginAt("/v1/admin/login", u.username, u.password, ip)).status).toBe(200);
    expect((await h.login(u.username, "not-the-password", ip)).status).toBe(401);

    const ok = (await eventsOf("auth.login.succeeded", { username: u.username, ip }))!;
    expect(ok).toHaveLength(1);
    expect(ok[0]).toMatchObject({ level: "info", actor_id: u.id, user_id: u.id });
    expect(ok[0]!.metadata).toStrictEqual({ username: u.username, ip, path: "/v1/admin/login" });

    const failed = await eventsOf("auth.login.failed", { username: u.username, ip });
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ level: "warn", actor_id: null });
    expect(failed[0]!.metadata).toStrictEqual({ username: u.username, ip, reason: "invalid_credentials" });
  });

  it("records the account-state reason, and truncates a tried username to 100 characters", async () => {
    const ip = freshIp();
    const d = await newUser();
    await h.request("PATCH", `/v1/admin/users/${d.id}`, { token: await h.adminToken(), body: { status: "disabled" } });
    expect((await h.login(d.username, d.password, ip)).status).toBe(403);
    const disabled = await eventsOf("auth.login.failed", { username: d.username, ip });
    expect(disabled).toHaveLength(1);
    expect(disabled[0]!.metadata).toStrictEqual({ username: d.username, ip, reason: "account_disabled" });
    expect(disabled[0]!.user_id).toBe(d.id);

    const longName = "z".repeat(128);
    expect((await h.login(longName, "not-the-password", ip)).status).toBe(401);
    const long = await eventsOf("auth.login.failed", { ip, reason: "invalid_credentials" });
    expect(long.map((e) => e.metadata.username)).toContain("z".repeat(100));
    expect(long.every((e) => String(e.metadata.username).length <= 100)).toBe(true);
  });
});

describe("bearer tokens (docs/api.md#tokens, items 19–22)", () => {
  let admin: { id: string; token_version: number };
  const key = new TextEncoder().encode(TEST_JWT_SECRET);
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

  const claimsFor = (over: Record<string, unknown> = {}) => {
    const now = Math.floor(Date.now() / 1000);
    return {
      iss: ISS,
      aud: ISS,
      sub: admin.id,
      role: "admin",
      tv: admin.token_version,
      iat: now,
      exp: now + 3600,
      jti: crypto.randomUUID(),
      ...over,
    };
  };
  const sign = (claims: Record<string, unknown>, alg = "HS256", secret = key) =>
    new SignJWT(claims).setProtectedHeader({ alg, typ: "JWT" }).sign(secret);

  beforeAll(async () => {
    await h.adminToken();
    admin = await adminRow();
  });

  it("accepts a token crafted with the right key and claims (so the rejections below are meaningful)", async () => {
    const res = await adminList(await sign(claimsFor()));
    expect(res.status, res.text).toBe(200);
    const skewed = await adminList(await sign(claimsFor({ iat: Math.floor(Date.now() / 1000) + 30 })));
    expect(skewed.status, skewed.text).toBe(200);
  });

  it("rejects forged, expired and malformed tokens with 401 unauthorized and WWW-Authenticate: Bearer", async () => {
    const now = Math.floor(Date.now() / 1000);
    const user = await newUser();
    const [hd, , sg] = user.token.split(".");
    const cases: [string, string][] = [
      ["alg none, empty signature", `${b64({ alg: "none", typ: "JWT" })}.${b64(claimsFor())}.`],
      ["alg none, some signature", `${b64({ alg: "none", typ: "JWT" })}.${b64(claimsFor())}.c2ln`],
      ["HS512", await sign(claimsFor(), "HS512")],
      ["HS384", await sign(claimsFor(), "HS384")],
      ["wrong iss", await sign(claimsFor({ iss: "evil" }))],
      ["wrong aud", await sign(claimsFor({ aud: "evil" }))],
      ["past exp", await sign(claimsFor({ iat: now - 7200, exp: now - 60 }))],
      ["exp == now", await sign(claimsFor({ iat: now - 60, exp: now }))],
      ["iat 120 s ahead", await sign(claimsFor({ iat: now + 120, exp: now + 3600 }))],
      ["another key", await sign(claimsFor(), "HS256", new TextEncoder().encode(ANOTHER_SECRET))],
      ["tv mismatch", await sign(claimsFor({ tv: admin.token_version + 1 }))],
      ["tv as a string", await sign(claimsFor({ tv: String(admin.token_version) }))],
      ["role mismatch (admin as user)", await sign(claimsFor({ role: "user" }))],
      ["role escalation (user as admin)", await sign(claimsFor({ sub: user.id, role: "admin", tv: 1 }))],
      ["sub not a UUID", await sign(claimsFor({ sub: "admin" }))],
      ["sub of nobody", await sign(claimsFor({ sub: crypto.randomUUID() }))],
      ["no sub", await sign({ ...claimsFor(), sub: undefined })],
      ["no exp", await sign({ ...claimsFor(), exp: undefined })],
      ["garbage", "garbage"],
      ["three garbage parts", "a.b.c"],
      // A real user token with its role flipped to admin, the original signature kept.
      ["tampered payload", `${hd}.${b64({ ...decodeJwt(user.token), role: "admin" })}.${sg}`],
    ];

    for (const [label, token] of cases) {
      expectUnauthorized(await adminList(token), label);
    }
    // The role-escalation token is not even good for the user's own routes.
    expectUnauthorized(await selfKeys(await sign(claimsFor({ sub: user.id, role: "admin", tv: 1 }))), "escalation on /v1/user");
  });

  it("parses the Authorization header strictly but accepts any case of the scheme", async () => {
    const token = await h.adminToken();
    const raw = (value: string) => h.request("GET", "/v1/admin/users", { headers: { authorization: value } });
    expectUnauthorized(await raw("Bearer"), "Bearer alone");
    expectUnauthorized(await raw("Bearer "), "Bearer + space");
    expectUnauthorized(await raw(`Basic ${Buffer.from(`admin:${TEST_ADMIN_PASSWORD}`).toString("base64")}`), "Basic");
    expectUnauthorized(await raw(token), "no scheme");
    expectUnauthorized(await raw(`Bearer ${token} ${token}`), "two tokens");
    expectUnauthorized(await raw(`Token ${token}`), "other scheme");
    for (const scheme of ["bearer", "BEARER", "Bearer"]) {
      const res = await raw(`${scheme} ${token}`);
      expect(res.status, `${scheme}: ${res.text}`).toBe(200);
    }
  });

  it("answers a request without Authorization with 401 and WWW-Authenticate: Bearer (item 20)", async () => {
    const res = await h.request("GET", "/v1/admin/users");
    expectUnauthorized(res);
    const portal = await h.request("GET", "/v1/user/ssh-keys");
    expectUnauthorized(portal);
  });

  it("ignores ?token= and the VNC cookie outside the VNC routes (item 22)", async () => {
    const token = await h.adminToken();
    expectUnauthorized(await h.request("GET", `/v1/admin/users?token=${token}`), "query");
    expectUnauthorized(await h.request("GET", "/v1/admin/users", { headers: { cookie: `ccp_vnc=${token}` } }), "cookie");
  });

  it("answers a user token on an admin route with 403 forbidden (item 21)", async () => {
    const u = await newUser();
    const res = await adminList(u.token);
    expect(res.status, res.text).toBe(403);
    expect(res.body).toStrictEqual({ error: expect.any(String), code: "forbidden" });
  });

  it("checks authentication, then role, then the body (docs/api.md#evaluation-order)", async () => {
    const u = await newUser();
    const bad = { rawBody: "not json" };
    expectUnauthorized(await h.request("POST", "/v1/admin/users", bad), "no token");
    expectUnauthorized(await h.request("POST", "/v1/admin/users", { ...bad, token: "garbage" }), "bad token");
    const asUser = await h.request("POST", "/v1/admin/users", { ...bad, token: u.token });
    expect(asUser.status, asUser.text).toBe(403);
    const asAdmin = await h.request("POST", "/v1/admin/users", { ...bad, token: await h.adminToken() });
    expect(asAdmin.status, asAdmin.text).toBe(400);
    // change-password with a bad body and no token: 401 first.
    expectUnauthorized(await h.request("POST", "/v1/user/change-password", { body: {} }), "change-password");
  });
});

describe("revocation (docs/api.md#token-checks, items 23–26)", () => {
  it("revokes a user's tokens when the admin rotates the password (item 23)", async () => {
    const u = await newUser();
    const res = await h.request("POST", `/v1/admin/users/${u.id}/rotate-password`, { token: await h.adminToken() });
    expect(res.status, res.text).toBe(200);
    const fresh: string = res.body.new_password;
    revealed.add(fresh);
    expect(fresh).toMatch(/^[A-Za-z0-9]{20}$/);
    expectUnauthorized(await selfKeys(u.token));
    expect((await h.login(u.username, u.password, freshIp())).status).toBe(401);
    const login = await h.login(u.username, fresh, freshIp());
    expect(login.status, login.text).toBe(200);
    expect((await selfKeys(login.body.token)).status).toBe(200);
  });

  it("revokes on disable, and re-enabling does not revive the old token (item 24)", async () => {
    const u = await newUser();
    const admin = await h.adminToken();
    const before = (await userRow(u.id))!.token_version;
    expect((await h.request("PATCH", `/v1/admin/users/${u.id}`, { token: admin, body: { status: "disabled" } })).status).toBe(200);
    expect((await userRow(u.id))!.token_version).toBe(before + 1);
    expectUnauthorized(await selfKeys(u.token), "disabled");
    expect((await h.request("PATCH", `/v1/admin/users/${u.id}`, { token: admin, body: { status: "active" } })).status).toBe(200);
    expectUnauthorized(await selfKeys(u.token), "re-enabled");
    const login = await h.login(u.username, u.password, freshIp());
    expect(login.status, login.text).toBe(200);
    expect((await selfKeys(login.body.token)).status).toBe(200);
  });

  it("revokes on a status change made directly in the database (the row is re-read on every request)", async () => {
    const u = await newUser();
    await h.database.sql`update users set status = 'disabled' where id = ${u.id}`;
    expectUnauthorized(await selfKeys(u.token));
    await h.database.sql`update users set status = 'active' where id = ${u.id}`;
    expect((await selfKeys(u.token)).status).toBe(200);
  });

  it("revokes on delete; the login then looks like an unknown user (item 25)", async () => {
    const u = await newUser();
    const del = await h.request("DELETE", `/v1/admin/users/${u.id}`, { token: await h.adminToken() });
    expect(del.status, del.text).toBe(204);
    expectUnauthorized(await selfKeys(u.token));
    const ip = freshIp();
    const login = await h.login(u.username, u.password, ip);
    expect(login.status, login.text).toBe(401);
    expect(login.body.code).toBe("invalid_credentials");
    const unknown = await h.login(uniqueName("nobody"), u.password, ip);
    expect(login.text).toBe(unknown.text);
  });

  it("treats a user marked deleted (hosts still being torn down) as gone", async () => {
    const u = await newUser();
    await h.database.sql`update users set deleted_at = now() where id = ${u.id}`;
    expectUnauthorized(await selfKeys(u.token));
    const ip = freshIp();
    const login = await h.login(u.username, u.password, ip);
    expect(login.status, login.text).toBe(401);
    expect(login.text).toBe((await h.login(uniqueName("nobody"), u.password, ip)).text);
  });

  it("revokes the earlier token on change-password and returns a working one (item 26)", async () => {
    const u = await newUser();
    const second = await h.login(u.username, u.password, freshIp());
    expect(second.status).toBe(200);
    const next = `changed-${u.password}`;
    passwords.add(next);
    const res = await h.request("POST", "/v1/user/change-password", {
      token: u.token,
      body: { old_password: u.password, new_password: next },
    });
    expect(res.status, res.text).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(["expires_in", "status", "token"]);
    expect(res.body).toMatchObject({ status: "ok", expires_in: 86400 });
    expect(decodeJwt(res.body.token)).toMatchObject({ sub: u.id, role: "user", tv: 2 });
    expectUnauthorized(await selfKeys(u.token), "token used for the call");
    expectUnauthorized(await selfKeys(second.body.token), "another session's token");
    expect((await selfKeys(res.body.token)).status).toBe(200);
    expect((await h.login(u.username, u.password, freshIp())).status).toBe(401);
    expect((await h.login(u.username, next, freshIp())).status).toBe(200);
    const events = await h.database.sql`select actor_id, user_id from events where type = 'auth.password.changed' and user_id = ${u.id}`;
    expect(events).toHaveLength(1);
    expect(events[0]!.actor_id).toBe(u.id);
  });

  it("change-password: wrong old password → 401 invalid_credentials, nothing changes", async () => {
    const u = await newUser();
    const res = await h.request("POST", "/v1/user/change-password", {
      token: u.token,
      ip: freshIp(),
      body: { old_password: "not-the-password", new_password: "another-new-password" },
    });
    expect(res.status, res.text).toBe(401);
    expect(res.body).toStrictEqual({ error: expect.any(String), code: "invalid_credentials" });
    expect((await selfKeys(u.token)).status).toBe(200);
    expect((await userRow(u.id))!.token_version).toBe(1);
    expect((await h.login(u.username, u.password, freshIp())).status).toBe(200);
  });

  it("change-password: validates the new password (400)", async () => {
    const u = await newUser();
    const short = await h.request("POST", "/v1/user/change-password", {
      token: u.token,
      body: { old_password: u.password, new_password: "short" },
    });
    expect(short.status, short.text).toBe(400);
    expect(short.body.details.map((d: { field: string }) => d.field)).toEqual(["new_password"]);
    const extra = await h.request("POST", "/v1/user/change-password", {
      token: u.token,
      body: { old_password: u.password, new_password: "long-enough-password", username: "admin" },
    });
    expect(extra.status, extra.text).toBe(400);
    expect(extra.body.details).toContainEqual({ field: "username", message: "unknown field" });
    expect((await userRow(u.id))!.token_version).toBe(1);
  });

  it("change-password for the admin → 409 admin_protected, nothing changes", async () => {
    const token = await h.adminToken();
    const before = await adminRow();
    const res = await h.request("POST", "/v1/user/change-password", {
      token,
      body: { old_password: TEST_ADMIN_PASSWORD, new_password: "admin-would-like-this" },
    });
    passwords.add("admin-would-like-this");
    expect(res.status, res.text).toBe(409);
    expect(res.body).toStrictEqual({ error: expect.any(String), code: "admin_protected" });
    expect((await adminRow()).token_version).toBe(before.token_version);
    expect((await adminList(token)).status).toBe(200);
    expect((await h.login("admin", TEST_ADMIN_PASSWORD, freshIp())).status).toBe(200);
  });

  it("rejects a token from the instant the account expires", async () => {
    const u = await newUser({ expires_at: inAnHour() });
    expect((await selfKeys(u.token)).status).toBe(200);
    await expireNow(u.id);
    expectUnauthorized(await selfKeys(u.token));
    // Extending the expiry restores the (non-revoked) token; this is the DB-only path, no scanner ran.
    await h.database.sql`update users set expires_at = now() + interval '1 hour' where id = ${u.id}`;
    expect((await selfKeys(u.token)).status).toBe(200);
  });
});

describe("secret rotation and admin seeding (docs/api.md#admin-seed, items 27–28)", () => {
  const seedLogger = () =>
    createLogger(
      { level: "debug" },
      new Writable({
        write(chunk, _enc, cb) {
          h.logs.push(String(chunk));
          cb();
        },
      }),
    );

  it("invalidates every earlier token when ADMIN_JWT_SECRET changes (item 28)", async () => {
    const u = await newUser();
    const adminToken = await h.adminToken();
    const rotated = await h.withConfig({ ADMIN_JWT_SECRET: ANOTHER_SECRET });
    const onRotated = (token: string, path: string) => rotated.request("GET", path, { token });
    expectUnauthorized(await onRotated(adminToken, "/v1/admin/users"), "admin");
    expectUnauthorized(await onRotated(u.token, "/v1/user/ssh-keys"), "user");
    // Logins work there, and the new tokens are not good on the old secret either.
    const login = await rotated.login(u.username, u.password, freshIp());
    expect(login.status, login.text).toBe(200);
    expect((await onRotated(login.body.token, "/v1/user/ssh-keys")).status).toBe(200);
    expectUnauthorized(await selfKeys(login.body.token), "new token, old secret");
  });

  it("re-hashes and revokes when ADMIN_PASSWORD changes (item 27)", async () => {
    const oldToken = await h.adminToken();
    const before = await adminRow();
    const next = "a-different-admin-password";
    passwords.add(next);
    const reseeded = await h.withConfig({ ADMIN_PASSWORD: next });
    try {
      const after = await adminRow();
      expect(after.id).toBe(before.id);
      expect(after.token_version).toBe(before.token_version + 1);
      expectUnauthorized(await reseeded.request("GET", "/v1/admin/users", { token: oldToken }), "old admin token");
      const old = await reseeded.login("admin", TEST_ADMIN_PASSWORD, freshIp());
      expect(old.status, old.text).toBe(401);
      expect(old.body.code).toBe("invalid_credentials");
      const fresh = await reseeded.login("admin", next, freshIp());
      expect(fresh.status, fresh.text).toBe(200);
      expect((await reseeded.request("GET", "/v1/admin/users", { token: fresh.body.token })).status).toBe(200);
      const seeded = await eventsOf("system.admin.seeded", { username: "admin" });
      expect(seeded.at(-1)!.metadata).toStrictEqual({ username: "admin", created: false, password_updated: true });
    } finally {
      // Put the environment's password back for the rest of the file.
      await h.withConfig({ ADMIN_PASSWORD: TEST_ADMIN_PASSWORD });
    }
    expect((await h.login("admin", TEST_ADMIN_PASSWORD, freshIp())).status).toBe(200);
  });

  const countSeeded = async () =>
    (await h.database.sql<{ n: number }[]>`select count(*)::int as n from events where type = 'system.admin.seeded'`)[0]!.n;

  it("changes nothing when re-seeded with the same password", async () => {
    const token = await h.adminToken();
    const before = await adminRow();
    const row = await userRow(before.id);
    const eventsBefore = await countSeeded();
    const again = await h.withConfig({});
    const eventsAfter = await countSeeded();
    expect(eventsAfter).toBe(eventsBefore);
    const rowAfter = await userRow(before.id);
    expect(rowAfter!.token_version).toBe(row!.token_version);
    expect(rowAfter!.updated_at).toBe(row!.updated_at);
    expect((await again.request("GET", "/v1/admin/users", { token })).status).toBe(200);
  });

  it("re-activates the admin and clears its expiry when the row was tampered with", async () => {
    const before = await adminRow();
    await h.database.sql`update users set status = 'disabled', expires_at = now() - interval '1 day' where id = ${before.id}`;
    try {
      await seedAdmin(h.database.db, seedLogger(), { username: "admin", password: TEST_ADMIN_PASSWORD, now: new Date() });
      const [row] = await h.database.sql`select status, expires_at, token_version from users where id = ${before.id}`;
      expect(row).toMatchObject({ status: "active", expires_at: null, token_version: before.token_version });
      const seeded = await eventsOf("system.admin.seeded", { username: "admin" });
      expect(seeded.at(-1)!.metadata).toStrictEqual({ username: "admin", created: false, password_updated: false });
    } finally {
      await h.database.sql`update users set status = 'active', expires_at = null where id = ${before.id}`;
    }
  });

  it("refuses to seed over an account with role user, and leaves that account alone", async () => {
    const u = await newUser();
    const before = await userRow(u.id);
    await expect(
      seedAdmin(h.database.db, seedLogger(), { username: u.username, password: "some-admin-password", now: new Date() }),
    ).rejects.toBeInstanceOf(AdminSeedError);
    passwords.add("some-admin-password");
    const after = await userRow(u.id);
    expect(after).toStrictEqual(before);
    expect((await h.login(u.username, u.password, freshIp())).status).toBe(200);
    // The real admin was not disabled by the failed attempt (the transaction rolled back).
    expect((await adminRow()).status).toBe("active");
  });

  it("disables an admin account left over from an earlier ADMIN_USERNAME", async () => {
    const oldAdminToken = await h.adminToken();
    const oldAdmin = await adminRow();
    const name = uniqueName("boss");
    const pw = "the-second-admin-password";
    passwords.add(pw);
    try {
      const other = await h.withConfig({ ADMIN_USERNAME: name, ADMIN_PASSWORD: pw });
      const [created] = await h.database.sql`select id, role, status, expires_at from users where username = ${name}`;
      expect(created).toMatchObject({ role: "admin", status: "active", expires_at: null });
      const seeded = await eventsOf("system.admin.seeded", { username: name });
      expect(seeded).toHaveLength(1);
      expect(seeded[0]!.metadata).toStrictEqual({ username: name, created: true, password_updated: false });

      const old = await userRow(oldAdmin.id);
      expect(old).toMatchObject({ status: "disabled", role: "admin", token_version: oldAdmin.token_version + 1 });
      expectUnauthorized(await other.request("GET", "/v1/admin/users", { token: oldAdminToken }), "old admin's token");
      const oldLogin = await other.login("admin", TEST_ADMIN_PASSWORD, freshIp());
      expect(oldLogin.status, oldLogin.text).toBe(403);
      expect(oldLogin.body.code).toBe("account_disabled");
      const login = await other.login(name, pw, freshIp());
      expect(login.status, login.text).toBe(200);
      expect(login.body).toMatchObject({ role: "admin", username: name });
    } finally {
      // Back to the original admin: it is re-activated and the interim one disabled.
      await h.withConfig({ ADMIN_USERNAME: "admin", ADMIN_PASSWORD: TEST_ADMIN_PASSWORD });
    }
    const [interim] = await h.database.sql`select status from users where username = ${name}`;
    expect(interim!.status).toBe("disabled");
    expect((await adminRow()).status).toBe("active");
    expect((await h.login("admin", TEST_ADMIN_PASSWORD, freshIp())).status).toBe(200);
  });
});

describe("no secret ever leaves the process", () => {
  it("keeps passwords, hashes and tokens out of responses, logs and events", async () => {
    expect(h.logs.length).toBeGreaterThan(50);
    expect(h.responses.length).toBeGreaterThan(50);
    const all = [...passwords];
    expect(findSecrets(h.responses, all)).toEqual([]);
    expect(findSecrets(h.logs, [...all, ...revealed])).toEqual([]);
    expect(findSecrets(h.responses, ["$argon2"])).toEqual([]);
    expect(findSecrets(h.logs, ["$argon2"])).toEqual([]);
    // Tokens are never logged, neither from a header nor from a `?token=` query string.
    expect(h.logs.filter((l) => l.includes("eyJ"))).toEqual([]);
    const events = (await h.database.sql<{ t: string }[]>`select row_to_json(e)::text as t from events e`).map((r) => r.t);
    expect(events.length).toBeGreaterThan(10);
    expect(findSecrets(events, [...all, ...revealed, "$argon2", "eyJ"])).toEqual([]);
  });
});
