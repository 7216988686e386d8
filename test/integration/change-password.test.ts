import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ApiHarness,
  TEST_ADMIN_PASSWORD,
  type TestUser,
  createApiHarness,
  findSecrets,
} from "../../shared/test/api-harness.js";

/** Self-service password change (docs/api.md#change-password, docs/api.md#token-checks, docs/api.md#limits; checklist item 26). */
let h: ApiHarness;
let admin: string;
let adminId: string;
const secrets: string[] = [TEST_ADMIN_PASSWORD];

beforeAll(async () => {
  h = await createApiHarness();
  admin = await h.adminToken();
  const [row] = await h.database.sql<{ id: string }[]>`select id from users where role = 'admin'`;
  adminId = row!.id;
});
afterAll(async () => {
  await h?.close();
});

const PATH = "/v1/user/change-password";
const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

const newPassword = () => {
  const p = `new-${randomUUID()}`;
  secrets.push(p);
  return p;
};
async function user(): Promise<TestUser> {
  const u = await h.createUser();
  secrets.push(u.password);
  return u;
}
/** Any authenticated route: tells whether a token is currently accepted. */
const tokenWorks = async (token: string) => (await h.request("GET", "/v1/user/ssh-keys", { token })).status;

async function state(userId: string) {
  const [row] = await h.database.sql<{ token_version: number; password_hash: string }[]>`
    select token_version, password_hash from users where id = ${userId}`;
  const [ev] = await h.database.sql<{ n: number }[]>`
    select count(*)::int as n from events where user_id = ${userId} and type = 'auth.password.changed'`;
  return { ...row!, events: ev!.n };
}

describe("POST /v1/user/change-password", () => {
  it("changes the password: fresh token, every earlier token revoked, event written", async () => {
    const u = await user();
    const second = await h.login(u.username, u.password);
    expect(second.status, second.text).toBe(200);
    const np = newPassword();

    const res = await h.request("POST", PATH, { token: u.token, body: { old_password: u.password, new_password: np } });
    expect(res.status, res.text).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(["expires_in", "status", "token"]);
    expect(res.body.status).toBe("ok");
    expect(res.body.expires_in).toBe(86400);
    expect(res.body.token).toMatch(JWT);
    expect(res.text).not.toContain(np);
    expect(res.text).not.toContain(u.password);

    expect(await tokenWorks(u.token)).toBe(401);
    expect(await tokenWorks(second.body.token)).toBe(401);
    expect(await tokenWorks(res.body.token)).toBe(200);

    const oldLogin = await h.login(u.username, u.password);
    expect(oldLogin.status, oldLogin.text).toBe(401);
    expect(oldLogin.body.code).toBe("invalid_credentials");
    const newLogin = await h.login(u.username, np);
    expect(newLogin.status, newLogin.text).toBe(200);

    const [row] = await h.database.sql<{ token_version: number }[]>`select token_version from users where id = ${u.id}`;
    expect(row!.token_version).toBe(2);
    const evs = await h.database.sql<{ level: string; actor_id: string; user_id: string; metadata: Record<string, unknown> }[]>`
      select level, actor_id, user_id, metadata from events where user_id = ${u.id} and type = 'auth.password.changed'`;
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({ level: "info", actor_id: u.id, user_id: u.id });
    expect(JSON.stringify(evs)).not.toContain(np);
    expect(JSON.stringify(evs)).not.toContain(u.password);
  });

  it("the returned token can change the password again", async () => {
    const u = await user();
    const p1 = newPassword();
    const p2 = newPassword();
    const first = await h.request("POST", PATH, { token: u.token, body: { old_password: u.password, new_password: p1 } });
    expect(first.status, first.text).toBe(200);
    const again = await h.request("POST", PATH, { token: first.body.token, body: { old_password: p1, new_password: p2 } });
    expect(again.status, again.text).toBe(200);
    expect(await tokenWorks(first.body.token)).toBe(401);
    expect(await tokenWorks(again.body.token)).toBe(200);
    expect((await h.login(u.username, p2)).status).toBe(200);
    expect((await state(u.id)).events).toBe(2);
  });

  it.each([
    ["8 characters", "abcdefgh"],
    ["128 characters", "z".repeat(128)],
    ["128 emoji", "🔑".repeat(128)],
  ])("accepts a new password of %s", async (_name, np) => {
    secrets.push(np);
    const u = await user();
    const res = await h.request("POST", PATH, { token: u.token, body: { old_password: u.password, new_password: np } });
    expect(res.status, res.text).toBe(200);
    expect((await h.login(u.username, np)).status).toBe(200);
  });

  it("answers a wrong old password with 401 invalid_credentials and changes nothing", async () => {
    const u = await user();
    const before = await state(u.id);
    const res = await h.request("POST", PATH, {
      token: u.token,
      body: { old_password: `${u.password}x`, new_password: newPassword() },
      ip: "10.20.0.1",
    });
    expect(res.status, res.text).toBe(401);
    expect(res.body).toEqual({ error: expect.any(String), code: "invalid_credentials" });
    expect(await state(u.id)).toEqual(before);
    // The caller's token was fine; only the password was wrong.
    expect(await tokenWorks(u.token)).toBe(200);
    expect((await h.login(u.username, u.password)).status).toBe(200);
  });

  it.each([
    ["7 characters", "a".repeat(7)],
    ["7 emoji (14 UTF-16 units)", "🔑".repeat(7)],
    ["129 characters", "a".repeat(129)],
    ["a control character", "password\u0001"],
    ["a newline", "pass\nword-long"],
    ["DEL", "password\u007f"],
    ["an empty string", ""],
    ["a number", 123456789],
    ["null", null],
  ])("rejects a new password of %s with 400 and changes nothing", async (_name, np) => {
    const u = await user();
    const before = await state(u.id);
    const res = await h.request("POST", PATH, { token: u.token, body: { old_password: u.password, new_password: np } });
    expect(res.status, res.text).toBe(400);
    expect(res.body.code).toBe("invalid_request");
    expect(res.body.details).toEqual([{ field: "new_password", message: expect.any(String) }]);
    expect(await state(u.id)).toEqual(before);
    expect(await tokenWorks(u.token)).toBe(200);
  });

  it("validates the body before checking the old password (docs/api.md#evaluation-order)", async () => {
    const u = await user();
    const res = await h.request("POST", PATH, { token: u.token, body: { old_password: "wrong-old", new_password: "short" } });
    expect(res.status, res.text).toBe(400);
    expect(res.body.details).toEqual([{ field: "new_password", message: expect.any(String) }]);
  });

  it.each([
    ["an extra field", (pw: string) => ({ old_password: pw, new_password: "long-enough-1", username: "admin" }), ["username"]],
    ["a user_id", (pw: string) => ({ old_password: pw, new_password: "long-enough-1", user_id: randomUUID() }), ["user_id"]],
    ["no old_password", () => ({ new_password: "long-enough-1" }), ["old_password"]],
    ["an empty old_password", () => ({ old_password: "", new_password: "long-enough-1" }), ["old_password"]],
    ["an old_password of 1025 characters", () => ({ old_password: "o".repeat(1025), new_password: "long-enough-1" }), ["old_password"]],
    ["no new_password", (pw: string) => ({ old_password: pw }), ["new_password"]],
    ["{}", () => ({}), ["new_password", "old_password"]],
  ])("rejects a body with %s", async (_name, make, fields) => {
    const u = await user();
    const before = await state(u.id);
    const res = await h.request("POST", PATH, { token: u.token, body: make(u.password) });
    expect(res.status, res.text).toBe(400);
    const got = (res.body.details as { field: string; message: string }[]).map((d) => d.field).sort();
    expect(got).toEqual(fields);
    if (fields.includes("username") || fields.includes("user_id")) {
      expect(res.body.details).toEqual([{ field: fields[0], message: "unknown field" }]);
    }
    expect(await state(u.id)).toEqual(before);
  });

  it("rejects bodies that are not JSON objects", async () => {
    const u = await user();
    for (const rawBody of ["", "nope", "[]", "null"]) {
      const res = await h.request("POST", PATH, { token: u.token, rawBody });
      expect(res.status, `${JSON.stringify(rawBody)}: ${res.text}`).toBe(400);
      expect(res.body.details[0].field).toBe("body");
    }
  });

  it("refuses the admin account with 409 admin_protected; nothing changes", async () => {
    const before = await state(adminId);
    const res = await h.request("POST", PATH, {
      token: admin,
      body: { old_password: TEST_ADMIN_PASSWORD, new_password: newPassword() },
    });
    expect(res.status, res.text).toBe(409);
    expect(res.body).toEqual({ error: expect.any(String), code: "admin_protected" });
    expect(await state(adminId)).toEqual(before);
    expect(await tokenWorks(admin)).toBe(200);
    expect((await h.login("admin", TEST_ADMIN_PASSWORD)).status).toBe(200);
  });

  it("requires a valid token (401) and acts only on the caller", async () => {
    const u = await user();
    const body = { old_password: u.password, new_password: newPassword() };
    const headerSets: Record<string, string>[] = [
      {},
      { authorization: "Bearer nope" },
      { authorization: `Bearer ${u.token}x` },
      { authorization: u.token },
    ];
    for (const headers of headerSets) {
      const res = await h.request("POST", PATH, { body, headers });
      expect(res.status, res.text).toBe(401);
      expect(res.body.code).toBe("unauthorized");
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
    }
    // Another user's token with this user's password proves nothing about the other account.
    const other = await user();
    const res = await h.request("POST", PATH, { token: other.token, body });
    expect(res.status, res.text).toBe(401);
    expect(res.body.code).toBe("invalid_credentials");
    expect((await h.login(u.username, u.password)).status).toBe(200);
    expect((await h.login(other.username, other.password)).status).toBe(200);
  });

  it("a disabled user's token is refused", async () => {
    const u = await user();
    const off = await h.request("PATCH", `/v1/admin/users/${u.id}`, { token: admin, body: { status: "disabled" } });
    expect(off.status, off.text).toBe(200);
    const res = await h.request("POST", PATH, { token: u.token, body: { old_password: u.password, new_password: newPassword() } });
    expect(res.status, res.text).toBe(401);
    expect(res.body.code).toBe("unauthorized");
  });

  it("counts wrong old passwords towards the per-username limit: the 11th try is 429 even when correct", async () => {
    const u = await user();
    const ip = "10.20.0.99";
    for (let i = 0; i < 10; i++) {
      const res = await h.request("POST", PATH, { token: u.token, body: { old_password: `wrong-${i}`, new_password: "long-enough-1" }, ip });
      expect(res.status, `attempt ${i + 1}: ${res.text}`).toBe(401);
    }
    const blocked = await h.request("POST", PATH, { token: u.token, body: { old_password: u.password, new_password: newPassword() }, ip });
    expect(blocked.status, blocked.text).toBe(429);
    expect(blocked.body.code).toBe("rate_limited");
    expect(blocked.body.retry_after).toBeGreaterThanOrEqual(1);
    expect(Number(blocked.headers.get("retry-after"))).toBe(blocked.body.retry_after);
    // The username is blocked for login too from that address (same counter), not from another
    // (issue 10 §3), and nothing changed.
    const login = await h.login(u.username, u.password, ip);
    expect(login.status, login.text).toBe(429);
    const elsewhere = await h.login(u.username, u.password, "10.20.0.100");
    expect(elsewhere.status, elsewhere.text).toBe(200);
    expect((await state(u.id)).events).toBe(0);
  });

  it("never writes a password into logs, events or other responses", async () => {
    expect(secrets.length).toBeGreaterThan(10);
    expect(findSecrets(h.logs, secrets)).toEqual([]);
    const evs = await h.database.sql`select message, metadata from events`;
    expect(findSecrets([JSON.stringify(evs)], secrets)).toEqual([]);
    expect(findSecrets(h.responses, secrets)).toEqual([]);
    expect(h.responses.filter((r) => r.includes("internal_error"))).toEqual([]);
  });
});
