import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../api/app.js";
import { DEFAULT_UI_DIR, loadUiBundle } from "../../api/http/ui.js";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";

/** docs/api.md#routing, docs/api.md#validation and . */
let h: ApiHarness;
let admin: string;
beforeAll(async () => {
  h = await createApiHarness();
  admin = await h.adminToken();
});
afterAll(async () => {
  await h.close();
});

const TS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describe("routing", () => {
  it("answers an unknown /v1 path with a JSON 404", async () => {
    const res = await h.request("GET", "/v1/nope");
    expect(res.status, res.text).toBe(404);
    expect(res.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(res.body).toEqual({ error: expect.any(String), code: "not_found" });
  });

  it("answers paths outside /v1 with the web UI when it is built, else with the same JSON 404", async () => {
    const built = existsSync(join(DEFAULT_UI_DIR, "index.html"));
    const res = await h.request("GET", "/some/page");
    if (built) {
      expect(res.status, res.text).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
      expect(res.text).toContain('<div id="root">');
      expect(res.headers.get("content-security-policy")).toContain("default-src 'self'");
    } else {
      expect(res.status).toBe(404);
      expect(res.body.code).toBe("not_found");
    }
    // The same app without a UI bundle, and with one, whatever this checkout has built.
    const bare = createApp({ ...h.deps, ui: null });
    const none = await bare.request("/some/page", {}, { incoming: { socket: { remoteAddress: "127.0.0.1" } } });
    expect(none.status).toBe(404);
    expect(await none.json()).toEqual({ error: expect.any(String), code: "not_found" });
    const dir = mkdtempSync(join(tmpdir(), "ccp-ui-"));
    try {
      writeFileSync(join(dir, "index.html"), '<!doctype html><div id="root"></div>');
      const withUi = createApp({ ...h.deps, ui: loadUiBundle(dir) });
      const env = { incoming: { socket: { remoteAddress: "127.0.0.1" } } };
      const page = await withUi.request("/admin/users", {}, env);
      expect(page.status).toBe(200);
      expect(page.headers.get("x-frame-options")).toBe("DENY");
      expect(await page.text()).toContain('<div id="root">');
      // API paths keep their JSON answers: unknown /v1 path, wrong method, health, docs.
      const unknown = await withUi.request("/v1/nope", {}, env);
      expect(unknown.status).toBe(404);
      expect(unknown.headers.get("content-type")).toBe("application/json; charset=utf-8");
      expect(((await unknown.json()) as { code: string }).code).toBe("not_found");
      const wrong = await withUi.request("/v1/admin/users/00000000-0000-4000-8000-000000000000/rotate-password", {}, env);
      expect(wrong.status).toBe(405);
      expect(wrong.headers.get("allow")).toBe("POST");
      expect((await withUi.request("/openapi.json", {}, env)).headers.get("content-type")).toContain("application/json");
      expect((await withUi.request("/entry/zzzzzz", {}, env)).headers.get("content-type")).toBe("application/json; charset=utf-8");
      expect((await withUi.request("/some/page", { method: "POST" }, env)).status).toBe(404);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("answers a wrong method with 405 and an Allow header", async () => {
    const res = await h.request("PUT", "/v1/admin/users", { token: admin, body: {} });
    expect(res.status, res.text).toBe(405);
    expect(res.body.code).toBe("method_not_allowed");
    expect(res.headers.get("allow")).toBe("GET, POST");
    const res2 = await h.request("POST", "/v1/admin/users/00000000-0000-4000-8000-000000000000");
    expect(res2.status).toBe(405);
    expect(res2.headers.get("allow")?.split(", ").sort()).toEqual(["DELETE", "GET", "PATCH"]);
  });

  it("does not redirect trailing slashes", async () => {
    const res = await h.request("GET", "/v1/admin/users/", { token: admin });
    expect(res.status).toBe(404);
  });

  it("checks authentication before the method body or size", async () => {
    const big = "x".repeat(1_572_864);
    const res = await h.request("POST", "/v1/admin/users", { rawBody: big });
    expect(res.status).toBe(401);
  });
});

describe("request bodies", () => {
  it("rejects a 1.5 MiB body with 413, with or without Content-Length", async () => {
    const big = JSON.stringify({ username: "big", password: "x".repeat(1_572_864) });
    const withLength = await h.request("POST", "/v1/admin/users", {
      token: admin,
      rawBody: big,
      headers: { "content-length": String(Buffer.byteLength(big)) },
    });
    expect(withLength.status, withLength.text).toBe(413);
    expect(withLength.body.code).toBe("payload_too_large");
    // A streamed body announces no length: the cap must hold while reading.
    const stream = new ReadableStream({
      start(controller) {
        for (let i = 0; i < 24; i++) controller.enqueue(new TextEncoder().encode("y".repeat(65536)));
        controller.close();
      },
    });
    const res = await h.app.request(
      "/v1/admin/users",
      { method: "POST", headers: { authorization: `Bearer ${admin}` }, body: stream, duplex: "half" } as RequestInit,
      { incoming: { socket: { remoteAddress: "127.0.0.1" } } },
    );
    expect(res.status).toBe(413);
    const users = await h.request("GET", "/v1/admin/users?limit=200", { token: admin });
    expect(users.body.users.map((u: { username: string }) => u.username)).not.toContain("big");
  });

  it("accepts a body of exactly 1 MiB as far as size goes", async () => {
    const pad = " ".repeat(1024 * 1024 - 40);
    const raw = `{"username":"exactly-mib"${pad},"password":"12345678"}`.slice(0, 1024 * 1024);
    expect(Buffer.byteLength(raw)).toBeLessThanOrEqual(1024 * 1024);
    const res = await h.request("POST", "/v1/admin/users", { token: admin, rawBody: raw });
    expect(res.status).not.toBe(413);
  });

  it("parses JSON whatever the Content-Type", async () => {
    const res = await h.request("POST", "/v1/admin/users", {
      token: admin,
      rawBody: JSON.stringify({ username: "no-content-type", password: "password1" }),
      headers: { "content-type": "text/plain" },
    });
    expect(res.status, res.text).toBe(201);
  });

  it.each([
    ["not json", "body"],
    ["[]", "body"],
    ["null", "body"],
    ["42", "body"],
    ['"str"', "body"],
    ["", "body"],
  ])("rejects body %j with 400 on field %s", async (raw, field) => {
    const res = await h.request("POST", "/v1/admin/users", { token: admin, rawBody: raw });
    expect(res.status, res.text).toBe(400);
    expect(res.body.code).toBe("invalid_request");
    expect(res.body.details[0].field).toBe(field);
  });

  it("lists every problem of a body, one detail per field", async () => {
    const res = await h.request("POST", "/v1/admin/users", {
      token: admin,
      body: { username: "a", password: "short", expires_at: "tomorrow", role: "admin", extra: 1 },
    });
    expect(res.status, res.text).toBe(400);
    const fields = res.body.details.map((d: { field: string }) => d.field).sort();
    expect(fields).toEqual(["expires_at", "extra", "password", "role", "username"]);
    expect(res.body.details).toContainEqual({ field: "role", message: "unknown field" });
  });

  it("accepts an empty body where the body is optional", async () => {
    const u = await h.createUser();
    const res = await h.request("POST", `/v1/admin/users/${u.id}/rotate-password`, { token: admin });
    expect(res.status, res.text).toBe(200);
    const res2 = await h.request("POST", `/v1/admin/users/${u.id}/rotate-password`, { token: admin, body: { x: 1 } });
    expect(res2.status).toBe(400);
  });
});

describe("headers and representations", () => {
  it("sends X-Request-Id on every response and no-store on /v1", async () => {
    for (const [method, path] of [
      ["GET", "/healthz"],
      ["GET", "/v1/nope"],
      ["GET", "/v1/admin/users"],
      ["GET", "/openapi.json"],
    ] as const) {
      const res = await h.request(method, path, { token: admin });
      expect(res.headers.get("x-request-id"), path).toMatch(/^[0-9a-f-]{36}$/);
      if (path.startsWith("/v1/")) expect(res.headers.get("cache-control"), path).toBe("no-store");
    }
    const a = await h.request("GET", "/healthz");
    const b = await h.request("GET", "/healthz");
    expect(a.headers.get("x-request-id")).not.toBe(b.headers.get("x-request-id"));
  });

  it("sends no CORS headers", async () => {
    const res = await h.request("GET", "/v1/admin/users", { token: admin, headers: { origin: "http://evil.test" } });
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("renders every timestamp as RFC 3339 UTC with milliseconds", async () => {
    await h.createUser({ expires_at: "2099-01-02T03:04:05+02:00" });
    const res = await h.request("GET", "/v1/admin/users", { token: admin });
    const stamps: string[] = [];
    JSON.stringify(res.body, (k, v) => {
      if (/_at$/.test(k) && v !== null) stamps.push(v as string);
      return v;
    });
    expect(stamps.length).toBeGreaterThan(3);
    for (const s of stamps) expect(s).toMatch(TS);
    expect(res.body.users.map((u: { expires_at: string | null }) => u.expires_at)).toContain("2099-01-02T01:04:05.000Z");
  });

  it("treats a path id that is not a UUID as not found", async () => {
    const res = await h.request("GET", "/v1/admin/users/not-a-uuid", { token: admin });
    expect(res.status).toBe(404);
    expect(res.body.code).toBe("user_not_found");
  });

  it("clamps and validates pagination", async () => {
    const clamp = await h.request("GET", "/v1/admin/users?limit=500", { token: admin });
    expect(clamp.body.limit).toBe(200);
    const dflt = await h.request("GET", "/v1/admin/users", { token: admin });
    expect(dflt.body).toMatchObject({ limit: 50, offset: 0 });
    for (const q of ["limit=0", "limit=abc", "limit=1.5", "offset=-1", "offset=x"]) {
      const res = await h.request("GET", `/v1/admin/users?${q}`, { token: admin });
      expect(res.status, q).toBe(400);
      expect(res.body.details[0].field).toBe(`query.${q.split("=")[0]}`);
    }
    const ignored = await h.request("GET", "/v1/admin/users?whatever=1", { token: admin });
    expect(ignored.status).toBe(200);
  });

  it("serves an OpenAPI 3.1 document generated from the routes", async () => {
    const res = await h.request("GET", "/openapi.json");
    expect(res.status).toBe(200);
    expect(res.body.openapi).toBe("3.1.0");
    for (const p of ["/v1/auth/login", "/v1/admin/login", "/v1/admin/users/{userID}", "/v1/user/ssh-keys/generate", "/healthz"]) {
      expect(Object.keys(res.body.paths)).toContain(p);
    }
    expect(res.body.paths["/v1/admin/users"].post.requestBody.content["application/json"].schema.properties).toHaveProperty(
      "username",
    );
  });
});

describe("robustness", () => {
  it("never answers 500 to random or malformed input on any route", async () => {
    const routes = (await h.request("GET", "/openapi.json")).body.paths as Record<string, Record<string, unknown>>;
    const user = await h.createUser();
    const bodies = [
      "{",
      "[1,2]",
      '{"username":{"$ne":null}}',
      '{"username":123,"password":[]}',
      '{"public_key":"ssh-ed25519 !!!"}',
      '{"status":null}',
      '{"expires_at":99999999999999}',
      '{"label":"\\u0000"}',
      `{"__proto__":{"x":1}}`,
      '{"old_password":"","new_password":""}',
    ];
    const ids = ["00000000-0000-4000-8000-000000000000", "not-a-uuid", "%00", user.id, "' or 1=1 --"];
    let count = 0;
    for (const [path, methods] of Object.entries(routes)) {
      for (const method of Object.keys(methods)) {
        for (const id of ids) {
          const concrete = path.replace(/\{[^}]+\}/g, encodeURIComponent(id));
          for (const raw of bodies) {
            for (const token of [admin, user.token]) {
              const res = await h.request(method.toUpperCase(), concrete, { token, rawBody: raw });
              count++;
              expect(res.status, `${method} ${concrete} ${raw}: ${res.text}`).toBeLessThan(500);
              expect(res.text).not.toMatch(/at .+\.(ts|js):\d+/);
            }
          }
        }
      }
    }
    expect(count).toBeGreaterThan(500);
  });
});
