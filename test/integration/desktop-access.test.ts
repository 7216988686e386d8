import { createServer, type IncomingHttpHeaders, request, type Server } from "node:http";
import { type AddressInfo, createServer as createNetServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, createApiHarness, type ListeningApi, type TestUser } from "../../shared/test/api-harness.js";
import { insertHostRow } from "../../shared/test/rows.js";

/**
 * Desktop access without login tokens in URLs (issue 10 §1, docs/api.md#vnc-proxy as revised):
 * one-time ticket → 303 → opaque desktop-session cookie, and what a hostile host's server on :6901
 * gets to see. The host's desktop is a capture server on a loopback address of its own, port 6901
 * (the proxy always dials :6901), standing in for a tenant who replaced websockify; the real
 * container path is covered by test/docker/vnc-proxy.test.ts.
 */
const HOST_ADDR = "127.0.0.77";
let h: ApiHarness;
let api: ListeningApi;
let admin: string;
let owner: TestUser;
let other: TestUser;
let hostId: string;
let otherHostId: string;
let capture: Server;
const seen: { url: string; headers: IncomingHttpHeaders }[] = [];

beforeAll(async () => {
  capture = createServer((req, res) => {
    seen.push({ url: req.url ?? "", headers: req.headers });
    res.setHeader("set-cookie", "host_cookie=1; Path=/");
    res.setHeader("service-worker-allowed", "/");
    res.setHeader("content-type", "text/html");
    res.end("<html>hostile desktop</html>");
  });
  await new Promise<void>((resolve) => capture.listen(6901, HOST_ADDR, resolve));
  h = await createApiHarness({ PUBLIC_BASE_URL: "http://127.0.0.1:1" });
  api = await h.listen();
  admin = await h.adminToken();
  owner = await h.createUser();
  other = await h.createUser();
  const sql = h.database.sql;
  hostId = (await insertHostRow(sql, { userId: owner.id })).id;
  otherHostId = (await insertHostRow(sql, { userId: other.id })).id;
  await sql`update hosts set management_address = ${HOST_ADDR} where id in ${sql([hostId, otherHostId])}`;
});
afterAll(async () => {
  await h?.close();
  await new Promise((resolve) => capture?.close(resolve));
});

const prefix = (portal: "admin" | "user", id = hostId) => `/v1/${portal}/hosts/${id}/vnc/`;

async function ticketUrl(portal: "admin" | "user", token: string, id = hostId): Promise<URL> {
  const res = await h.request("POST", `${prefix(portal, id)}session`, { token });
  expect(res.status, res.text).toBe(200);
  expect(Object.keys(res.body).sort()).toEqual(["expires_at", "url"]);
  return new URL(res.body.url);
}

/** Redeem a ticket URL against the listening API; returns the 303 and the session cookie. */
async function redeem(url: URL, path = url.pathname) {
  const res = await fetch(`${api.url}${path}${url.search}`, { redirect: "manual" });
  const setCookie = res.headers.get("set-cookie") ?? "";
  const cookie = /^ccp_vnc=([^;]+)/.exec(setCookie)?.[1];
  return { res, setCookie, cookie, body: res.status >= 400 ? await res.json() : null };
}

const get = (path: string, headers: Record<string, string> = {}) => fetch(`${api.url}${path}`, { headers, redirect: "manual" });

describe("POST …/vnc/session and the ticket", () => {
  it("gives a one-time URL on PUBLIC_BASE_URL; the ticket answers 303 to the bare prefix with an HttpOnly path cookie", async () => {
    const url = await ticketUrl("user", owner.token);
    expect(url.origin).toBe("http://127.0.0.1:1");
    expect(url.pathname).toBe(prefix("user"));
    const ticket = url.searchParams.get("ticket")!;
    expect(ticket).toMatch(/^[A-Za-z0-9_-]{43}$/); // 256 bits
    expect(url.toString()).not.toContain(owner.token);

    const { res, setCookie, cookie } = await redeem(url);
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe(prefix("user")); // no query: the ticket leaves the address bar
    expect(setCookie).toBe(`ccp_vnc=${cookie}; Path=${prefix("user")}; HttpOnly; SameSite=Strict`);
    expect(cookie).not.toBe(ticket);
    expect(cookie).not.toContain(".");
    // Only hashes are stored in Redis.
    const keys = await h.deps.redis.keys(`${h.prefix}:vnc:*`);
    for (const k of keys) {
      expect(k).not.toContain(ticket);
      expect(k).not.toContain(cookie!);
      expect(await h.deps.redis.type(k).then((t) => (t === "string" ? h.deps.redis.get(k) : ""))).not.toContain(cookie!);
    }

    // The cookie alone now opens the desktop; the host sees neither it nor anything of the API's.
    seen.length = 0;
    const page = await get(prefix("user"), { cookie: `ccp_vnc=${cookie}`, referer: `http://127.0.0.1:1${prefix("user")}?ticket=${ticket}` });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("hostile desktop");
    expect(page.headers.get("referrer-policy")).toBe("no-referrer");
    expect(page.headers.get("set-cookie")).toBeNull();
    expect(page.headers.get("service-worker-allowed")).toBeNull();
    expect(seen).toHaveLength(1);
    expect(seen[0]!.headers.cookie).toBeUndefined();
    expect(seen[0]!.headers.referer).toBeUndefined();
    expect(seen[0]!.headers.authorization).toBeUndefined();
    expect(JSON.stringify(seen)).not.toContain(cookie!);
    expect(JSON.stringify(seen)).not.toContain(ticket);
  });

  it("works once", async () => {
    const url = await ticketUrl("user", owner.token);
    expect((await redeem(url)).res.status).toBe(303);
    const again = await redeem(url);
    expect(again.res.status).toBe(401);
    expect(again.body).toMatchObject({ code: "unauthorized" });
    expect(again.setCookie).toBe("");
  });

  it("expires after 30 s (the ticket's Redis key carries the TTL; an expired one is refused)", async () => {
    const url = await ticketUrl("admin", admin);
    const keys = await h.deps.redis.keys(`${h.prefix}:vnc:ticket:*`);
    const ttls = await Promise.all(keys.map((k) => h.deps.redis.ttl(k)));
    for (const t of ttls) expect(t).toBeGreaterThan(0);
    for (const t of ttls) expect(t).toBeLessThanOrEqual(30);
    await h.deps.redis.del(...keys); // what expiry does
    expect((await redeem(url)).res.status).toBe(401);
  });

  it("is bound to its host and portal: not valid on another host's prefix or the other portal", async () => {
    const url = await ticketUrl("admin", admin);
    const wrongHost = await redeem(url, prefix("admin", otherHostId));
    expect(wrongHost.res.status).toBe(401);
    const url2 = await ticketUrl("admin", admin);
    expect((await redeem(url2, prefix("user"))).res.status).toBe(401);
  });

  it("follows the proxy's authorization: another user's host → 404, a user on the admin route → 403, not running → 409", async () => {
    expect((await h.request("POST", `${prefix("user", otherHostId)}session`, { token: owner.token })).status).toBe(404);
    expect((await h.request("POST", `${prefix("admin")}session`, { token: owner.token })).status).toBe(403);
    expect((await h.request("POST", `${prefix("user")}session`)).status).toBe(401);
    const stopped = (await insertHostRow(h.database.sql, { status: "stopped" })).id;
    const res = await h.request("POST", `${prefix("admin", stopped)}session`, { token: admin });
    expect(res.status, res.text).toBe(409);
    expect(res.body.code).toBe("host_not_running");
  });

  it("no longer accepts a login token in the query string", async () => {
    const res = await get(`${prefix("user")}?token=${owner.token}`);
    expect(res.status).toBe(401);
    expect(res.headers.get("set-cookie")).toBeNull();
  });
});

describe("the desktop session", () => {
  async function session(portal: "admin" | "user", token: string, id = hostId) {
    const { cookie } = await redeem(await ticketUrl(portal, token, id));
    return cookie!;
  }

  it("is scoped to its host: the cookie does not open another host's desktop", async () => {
    const c = await session("admin", admin);
    expect((await get(prefix("admin"), { cookie: `ccp_vnc=${c}` })).status).toBe(200);
    expect((await get(prefix("admin", otherHostId), { cookie: `ccp_vnc=${c}` })).status).toBe(401);
  });

  it("is never a credential for an API route", async () => {
    const c = await session("admin", admin);
    for (const path of ["/v1/admin/users", "/v1/admin/dashboard/stats", "/v1/user/hosts"]) {
      const res = await get(path, { cookie: `ccp_vnc=${c}` });
      expect(res.status, path).toBe(401);
    }
  });

  it("ends when the user changes their password", async () => {
    const u = await h.createUser();
    const id = (await insertHostRow(h.database.sql, { userId: u.id })).id;
    await h.database.sql`update hosts set management_address = ${HOST_ADDR} where id = ${id}`;
    const c = await session("user", u.token, id);
    expect((await get(prefix("user", id), { cookie: `ccp_vnc=${c}` })).status).toBe(200);
    const cp = await h.request("POST", "/v1/user/change-password", { token: u.token, body: { old_password: u.password, new_password: "a-new-password-1" } });
    expect(cp.status, cp.text).toBe(200);
    expect((await get(prefix("user", id), { cookie: `ccp_vnc=${c}` })).status).toBe(401);
  });

  it("ends with 'log out everywhere', which also ends the caller's tokens (the admin's too)", async () => {
    const adminNow = await h.adminToken();
    const c = await session("admin", adminNow);
    expect((await get(prefix("admin"), { cookie: `ccp_vnc=${c}` })).status).toBe(200);
    const out = await h.request("POST", "/v1/auth/logout-all", { token: adminNow });
    expect(out.status, out.text).toBe(204);
    expect((await get(prefix("admin"), { cookie: `ccp_vnc=${c}` })).status).toBe(401);
    expect((await h.request("GET", "/v1/admin/users", { token: adminNow })).status).toBe(401);
    const [ev] = await h.database.sql`select type from events where type = 'auth.logged_out_everywhere'`;
    expect(ev).toBeDefined();
    admin = await h.adminToken(); // a fresh login works
    expect((await h.request("GET", "/v1/admin/users", { token: admin })).status).toBe(200);
  });

  it("ends when the user is disabled", async () => {
    const u = await h.createUser();
    const id = (await insertHostRow(h.database.sql, { userId: u.id })).id;
    await h.database.sql`update hosts set management_address = ${HOST_ADDR} where id = ${id}`;
    const c = await session("user", u.token, id);
    await h.database.sql`update users set status = 'disabled' where id = ${u.id}`;
    expect((await get(prefix("user", id), { cookie: `ccp_vnc=${c}` })).status).toBe(401);
  });

  it("ends after the idle limit, and each use restarts the idle timer", async () => {
    const c = await session("admin", admin);
    const keys = await h.deps.redis.keys(`${h.prefix}:vnc:session:*`);
    const ttl = Math.max(...(await Promise.all(keys.map((k) => h.deps.redis.ttl(k)))));
    expect(ttl).toBeGreaterThan(h.config.VNC_SESSION_IDLE_SECONDS - 60);
    expect(ttl).toBeLessThanOrEqual(h.config.VNC_SESSION_IDLE_SECONDS);
    // Shorten every session's remaining life; a use slides it back to the full idle limit.
    for (const k of keys) await h.deps.redis.expire(k, 5);
    expect((await get(prefix("admin"), { cookie: `ccp_vnc=${c}` })).status).toBe(200);
    const after = Math.max(...(await Promise.all(keys.map((k) => h.deps.redis.ttl(k)))));
    expect(after).toBeGreaterThan(60);
    // Idle past the limit: the key is gone, and so is the session.
    for (const k of keys) await h.deps.redis.del(k);
    expect((await get(prefix("admin"), { cookie: `ccp_vnc=${c}` })).status).toBe(401);
  });

  it("ends when its host is stopped, rebuilt or deleted (the revocation message)", async () => {
    const c = await session("admin", admin);
    await h.deps.revoke({ scope: "host", id: hostId, reason: "host_stopped" });
    const deadline = Date.now() + 10_000;
    let status = 200;
    while (Date.now() < deadline && (status = (await get(prefix("admin"), { cookie: `ccp_vnc=${c}` })).status) === 200) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(status).toBe(401);
  });
});

describe("what host content cannot do", () => {
  it("cannot install a service worker: Service-Worker: script → 403, never reaching the host", async () => {
    const { cookie } = await redeem(await ticketUrl("admin", admin));
    seen.length = 0;
    const res = await get(`${prefix("admin")}sw.js`, { cookie: `ccp_vnc=${cookie}`, "service-worker": "script" });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ code: "forbidden" });
    expect(seen).toHaveLength(0);
  });
});

describe("VNC_PUBLIC_BASE_URL: desktops on an origin of their own", () => {
  /** A request to the listening API as if addressed to `host` (two names of one loopback server). */
  const as = (port: number, host: string, path: string, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; headers: IncomingHttpHeaders }>((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port, path, headers: { ...headers, host } }, (res) => {
        res.resume();
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      });
      req.on("error", reject);
      req.end();
    });

  it("hands out URLs on that origin, and desktop routes answer only there", async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createNetServer().listen(0, "127.0.0.1", () => {
        const p = (probe.address() as AddressInfo).port;
        probe.close(() => resolve(p));
      });
    });
    const apiHost = `api.test:${port}`;
    const desktopHost = `desktops.test:${port}`;
    const sep = await h.withConfig({ PUBLIC_BASE_URL: `http://${apiHost}`, VNC_PUBLIC_BASE_URL: `http://${desktopHost}` });
    await sep.listen(port);
    const token = await sep.adminToken();
    const res = await sep.request("POST", `${prefix("admin")}session`, { token, headers: { host: apiHost } });
    expect(res.status, res.text).toBe(200);
    const url = new URL(res.body.url);
    expect(url.origin).toBe(`http://${desktopHost}`);
    // On the API's origin the desktop routes do not answer, not even to redeem a ticket…
    expect((await as(port, apiHost, `${url.pathname}${url.search}`)).status).toBe(404);
    // …on the desktop origin they do, the ticket still unused.
    const redeemed = await as(port, desktopHost, `${url.pathname}${url.search}`);
    expect(redeemed.status).toBe(303);
    const cookie = /^ccp_vnc=([^;]+)/.exec(String(redeemed.headers["set-cookie"] ?? ""))?.[1];
    expect(cookie).toBeTruthy();
    expect((await as(port, desktopHost, prefix("admin"), { cookie: `ccp_vnc=${cookie}` })).status).toBe(200);
    expect((await as(port, apiHost, prefix("admin"), { cookie: `ccp_vnc=${cookie}` })).status).toBe(404);
  });
});
