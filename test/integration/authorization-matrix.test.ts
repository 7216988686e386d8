import { randomBytes } from "node:crypto";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JWT_AUDIENCE, JWT_ISSUER } from "../../shared/auth/tokens.js";
import { type ApiHarness, type TestResponse, type TestUser, TEST_JWT_SECRET, createApiHarness } from "../../shared/test/api-harness.js";
import { insertBindingRow, insertEgressRow, insertHostRow, insertTaskRow } from "../../shared/test/rows.js";
import { AUTH_TABLE, type AuthRow, type ParamKind } from "./authz-table.js";

/**
 * Issue 10 §6: the authorization matrix, generated from the route table. Every route of
 * /openapi.json × every way a credential can be wrong → the status and code of docs/api.md#authorization
 * (401 `unauthorized`, 403 `forbidden`, 404 `<resource>_not_found` for another tenant's ids), plus a
 * positive control per route (the right caller is not refused), so no row can pass by accident.
 */

let h: ApiHarness;
let routes: { method: string; path: string; security: unknown }[] = [];

interface Tenant {
  user: TestUser;
  ids: Record<ParamKind, string>;
}
let tenantA: Tenant;
let tenantB: Tenant;
let adminId: string;

const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");

async function sign(
  claims: { sub: string; role: "admin" | "user"; tv: number },
  opts: { secret?: string; iss?: string; aud?: string; iatOffset?: number; ttl?: number } = {},
): Promise<string> {
  const iat = Math.floor(Date.now() / 1000) + (opts.iatOffset ?? 0);
  return new SignJWT({ role: claims.role, tv: claims.tv })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuer(opts.iss ?? JWT_ISSUER)
    .setAudience(opts.aud ?? JWT_AUDIENCE)
    .setSubject(claims.sub)
    .setIssuedAt(iat)
    .setExpirationTime(iat + (opts.ttl ?? 3600))
    .sign(new TextEncoder().encode(opts.secret ?? TEST_JWT_SECRET));
}

const tokenVersion = async (id: string) =>
  (await h.database.sql<{ token_version: number }[]>`select token_version from users where id = ${id}`)[0]!.token_version;

/** A tenant with one resource of every kind a path parameter can name. */
async function makeTenant(): Promise<Tenant> {
  const sql = h.database.sql;
  const user = await h.createUser();
  const host = await insertHostRow(sql, { userId: user.id });
  const gen = await h.request("POST", "/v1/user/ssh-keys/generate", { token: user.token, body: {} });
  expect(gen.status, gen.text).toBe(201);
  const egress = await insertEgressRow(sql);
  const binding = await insertBindingRow(sql, host.id, egress);
  const task = await insertTaskRow(sql, { kind: "host.start", hostId: host.id });
  // Engines are not a tenant's, but each tenant gets one so a destructive row acts on a spare.
  const engine = `matrix-${randomBytes(4).toString("hex")}`;
  await sql`insert into engines (id, endpoint) values (${engine}, 'unix:///var/run/matrix.sock')`;
  // A finished, recorded SSH session of the tenant's host (docs/sessions.md).
  const [session] = await sql<{ id: string }[]>`insert into sessions (kind, host_id, user_id, login, ended_at, recording)
    values ('ssh', ${host.id}, ${user.id}, ${host.shortId}, now(), 'output') returning id`;
  await sql`insert into session_recording_chunks (session_id, seq, data) values (${session!.id}, 0, ${'{"version":2,"width":80,"height":24}\n'})`;
  // Webhooks are not a tenant's either: one each, so the destructive row deletes a spare. Its
  // secret is never read by these routes (rotate replaces it, test only queues a delivery).
  const [webhook] = await sql<{ id: string }[]>`insert into webhooks (url, event_types, secret_enc)
    values ('http://127.0.0.1:9/matrix', '["host.*"]'::jsonb, 'v1a:AAAA') returning id`;
  return {
    user,
    ids: {
      host: host.id,
      key: gen.body.ssh_key?.id ?? gen.body.key?.id ?? gen.body.id,
      user: user.id,
      task,
      egress,
      binding,
      engine,
      shortId: host.shortId,
      path: "index.html",
      session: session!.id,
      webhook: webhook!.id,
    },
  };
}

function fill(path: string, row: AuthRow, t: Tenant): string {
  return path.replace(/\{(\w+)\}/g, (_, name: string) => {
    const kind = row.params?.[name];
    if (!kind) throw new Error(`${path}: no fixture for {${name}} in authz-table.ts`);
    return encodeURIComponent(t.ids[kind]);
  });
}

function call(method: string, path: string, row: AuthRow, headers: Record<string, string>, t: Tenant = tenantA): Promise<TestResponse> {
  const body = typeof row.body === "function" ? row.body(t) : row.body;
  return h.request(method, path, { headers, ...(body !== undefined && method !== "GET" ? { body } : {}) });
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

function expectEnvelope(res: TestResponse, status: number, code: string, what: string) {
  expect(res.status, `${what}: ${res.text}`).toBe(status);
  expect(res.body, `${what}: not the error envelope: ${res.text}`).toMatchObject({ error: expect.any(String), code });
}

beforeAll(async () => {
  // The egress test route waits for a worker that does not run here: no need to wait long.
  h = await createApiHarness({ EGRESS_TEST_WAIT_SECONDS: "1" });
  const doc = await h.request("GET", "/openapi.json");
  for (const [path, item] of Object.entries(doc.body.paths as Record<string, Record<string, { security?: unknown }>>)) {
    for (const [method, op] of Object.entries(item)) routes.push({ method: method.toUpperCase(), path, security: op.security });
  }
  tenantA = await makeTenant();
  tenantB = await makeTenant();
  adminId = (await h.database.sql<{ id: string }[]>`select id from users where role = 'admin'`)[0]!.id;
});

afterAll(async () => {
  await h?.close();
});

describe("the route table", () => {
  it("has exactly one row per route of /openapi.json (a new route must declare who may call it)", () => {
    const keys = routes.map((r) => `${r.method} ${r.path}`);
    const missing = keys.filter((k) => !(k in AUTH_TABLE));
    const stale = Object.keys(AUTH_TABLE).filter((k) => !keys.includes(k));
    expect(missing, "routes without a row in test/integration/authz-table.ts").toEqual([]);
    expect(stale, "rows for routes /openapi.json does not have").toEqual([]);
    expect(routes.length).toBeGreaterThan(40);
  });

  it("documents the same access as the table: public routes need no bearer, the others do", () => {
    for (const r of routes) {
      const row = AUTH_TABLE[`${r.method} ${r.path}`]!;
      const needsBearer = Array.isArray(r.security) && r.security.length > 0;
      expect(needsBearer, `${r.method} ${r.path}`).toBe(row.auth !== "public");
    }
  });
});

/** Every way a credential can be wrong; each must end in 401 `unauthorized` on every protected route. */
const BAD_CREDENTIALS: Record<string, (row: AuthRow) => Promise<Record<string, string>>> = {
  "no credential": async () => ({}),
  "malformed bearer": async () => bearer("not-a-jwt"),
  "empty bearer": async () => ({ authorization: "Bearer " }),
  "basic auth instead of bearer": async () => ({ authorization: `Basic ${Buffer.from("admin:x").toString("base64")}` }),
  expired: async (row) => bearer(await signFor(row, { iatOffset: -7200, ttl: 3600 })),
  "signed with another secret": async (row) => bearer(await signFor(row, { secret: randomBytes(32).toString("hex") })),
  "wrong issuer": async (row) => bearer(await signFor(row, { iss: "someone-else" })),
  "wrong audience": async (row) => bearer(await signFor(row, { aud: "someone-else" })),
  "alg none": async (row) => {
    const c = await claimsFor(row);
    const now = Math.floor(Date.now() / 1000);
    const p = b64({ ...c, iss: JWT_ISSUER, aud: JWT_AUDIENCE, iat: now, exp: now + 3600 });
    return bearer(`${b64({ alg: "none", typ: "JWT" })}.${p}.`);
  },
  "alg none with a signature part": async (row) => {
    const c = await claimsFor(row);
    const now = Math.floor(Date.now() / 1000);
    const p = b64({ ...c, iss: JWT_ISSUER, aud: JWT_AUDIENCE, iat: now, exp: now + 3600 });
    return bearer(`${b64({ alg: "none", typ: "JWT" })}.${p}.${b64({})}`);
  },
  "disabled user": async () => bearer(await stateToken("disabled")),
  "expired user": async () => bearer(await stateToken("expired")),
  "deleted user": async () => bearer(await stateToken("deleted")),
  "token from before a password change": async () => bearer(await staleToken()),
  "desktop-session cookie instead of a bearer": async () => ({ cookie: `ccp_vnc=${randomBytes(32).toString("base64url")}` }),
};

/** The right identity for the route (admin for admin routes, tenant A otherwise). */
async function claimsFor(row: AuthRow) {
  return row.auth === "admin"
    ? { sub: adminId, role: "admin" as const, tv: await tokenVersion(adminId) }
    : { sub: tenantA.user.id, role: "user" as const, tv: await tokenVersion(tenantA.user.id) };
}
const signFor = async (row: AuthRow, opts: Parameters<typeof sign>[1]) => sign(await claimsFor(row), opts);

/**
 * A correctly signed token of a user whose row is then put in one bad state directly in Postgres —
 * without the token-version bump the API's own verbs do — so each state is refused on its own.
 */
const stateTokens = new Map<string, string>();
async function stateToken(state: "disabled" | "expired" | "deleted"): Promise<string> {
  const cached = stateTokens.get(state);
  if (cached) return cached;
  const u = await h.createUser();
  const sql = h.database.sql;
  if (state === "disabled") await sql`update users set status = 'disabled' where id = ${u.id}`;
  if (state === "expired") await sql`update users set expires_at = now() - interval '1 minute' where id = ${u.id}`;
  if (state === "deleted") await sql`update users set deleted_at = now() where id = ${u.id}`;
  stateTokens.set(state, u.token);
  return u.token;
}
let stale: string | undefined;
async function staleToken(): Promise<string> {
  if (stale) return stale;
  const u = await h.createUser();
  const res = await h.request("POST", "/v1/user/change-password", {
    token: u.token,
    body: { old_password: u.password, new_password: `pw-${randomBytes(8).toString("hex")}` },
  });
  expect(res.status, res.text).toBe(200);
  stale = u.token;
  return stale;
}

describe("every protected route refuses every bad credential with 401 unauthorized", () => {
  const rows = Object.entries(AUTH_TABLE).filter(([, row]) => row.auth !== "public");
  for (const [name, make] of Object.entries(BAD_CREDENTIALS)) {
    it(name, async () => {
      let n = 0;
      for (const [key, row] of rows) {
        if (!routes.some((r) => `${r.method} ${r.path}` === key)) continue; // reported by the table test
        const [method, path] = key.split(" ") as [string, string];
        const res = await call(method, fill(path, row, tenantA), row, await make(row));
        expectEnvelope(res, 401, "unauthorized", `${key} with ${name}`);
        n++;
      }
      expect(n).toBeGreaterThan(30);
    });
  }
});

describe("role and tenant boundaries", () => {
  it("a user's valid token on any admin route → 403 forbidden", async () => {
    for (const [key, row] of Object.entries(AUTH_TABLE)) {
      if (row.auth !== "admin" || !routes.some((r) => `${r.method} ${r.path}` === key)) continue;
      const [method, path] = key.split(" ") as [string, string];
      const res = await call(method, fill(path, row, tenantA), row, bearer(tenantA.user.token));
      expectEnvelope(res, 403, "forbidden", key);
    }
  });

  it("another tenant's ids on any user route → 404 with the resource's code", async () => {
    let n = 0;
    for (const [key, row] of Object.entries(AUTH_TABLE)) {
      if (row.auth !== "user" || !row.params || !routes.some((r) => `${r.method} ${r.path}` === key)) continue;
      expect(row.notFound, `${key}: a user route with ids must name its 404 code`).toBeTruthy();
      const [method, path] = key.split(" ") as [string, string];
      const res = await call(method, fill(path, row, tenantB), row, bearer(tenantA.user.token));
      expectEnvelope(res, 404, row.notFound!, `${key} with tenant B's ids`);
      n++;
    }
    expect(n).toBeGreaterThanOrEqual(4);
  });

  it("user list routes show none of another tenant's ids", async () => {
    const hosts = await h.request("GET", "/v1/user/hosts", { token: tenantA.user.token });
    expect(hosts.text).toContain(tenantA.ids.host);
    expect(hosts.text).not.toContain(tenantB.ids.host);
    const keys = await h.request("GET", "/v1/user/ssh-keys", { token: tenantA.user.token });
    expect(keys.text).toContain(tenantA.ids.key);
    expect(keys.text).not.toContain(tenantB.ids.key);
  });
});

describe("positive controls: the right caller is let through on every route", () => {
  it("each route answers its rightful caller without 401/403 or a not-found for its own ids, and never 5xx", async () => {
    const admin = await h.adminToken();
    for (const r of routes) {
      const key = `${r.method} ${r.path}`;
      const row = AUTH_TABLE[key];
      if (!row) continue;
      // Destructive and session-ending routes act on a tenant of their own.
      const t = row.destructive || row.revokesCaller ? await makeTenant() : tenantA;
      const headers = row.auth === "admin" ? bearer(admin) : row.auth === "user" ? bearer(t.user.token) : {};
      const res = await call(r.method, fill(r.path, row, t), row, headers, t);
      // A desktop route may find nothing listening in the fixture host: that is the proxy's own 502.
      if (res.body?.code !== "upstream_unreachable") expect(res.status, `${key}: ${res.text}`).toBeLessThan(500);
      // Public routes may still refuse a wrong password (401 invalid_credentials), never a missing token.
      expect(["unauthorized", "forbidden"], `${key}: ${res.text}`).not.toContain(res.body?.code);
      if (row.auth !== "public") expect([401, 403], `${key}: ${res.text}`).not.toContain(res.status);
      if (row.notFound) expect(res.body?.code, `${key}: ${res.text}`).not.toBe(row.notFound);
    }
  });
});
