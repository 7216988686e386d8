import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocketServer, type WebSocket as ServerSocket } from "ws";
import { slotKey } from "../../api/http/connection-slots.js";
import { type ApiHarness, createApiHarness, type ListeningApi, type TestUser } from "../../shared/test/api-harness.js";
import { insertHostRow } from "../../shared/test/rows.js";
import { closed, openWs } from "../../shared/test/vnc.js";

/**
 * Per-user caps on long-lived connections (issue 10 §2), attacked through the real parts: the API
 * on a real socket, real Postgres and Redis, the real WebSocket client. A tenant who opens streams
 * or desktop sockets in a loop gets 429 `too_many_connections` once at the cap — before anything
 * streams and before any socket to the host is dialed — while other users are untouched; closing
 * one frees its slot; slots left behind by a crashed api expire; the count holds across replicas.
 *
 * The "host" is a WebSocket server on a loopback address of its own, port 6901 (the proxy always
 * dials :6901), standing in for websockify; no container is needed to count sockets.
 */
const HOST_ADDR = "127.0.0.79";
const SSE_CAP = 3;
const WS_CAP = 2;

let h: ApiHarness;
/** A second api replica: same database and Redis prefix, its own process state. */
let h2: ApiHarness;
let api: ListeningApi;
let api2: ListeningApi;
let admin: string;
let u: TestUser;
let v: TestUser;
let hostId: string;
let vncServer: WebSocketServer;
/** Sockets the fake host's desktop accepted, open now. */
const hostSockets = new Set<ServerSocket>();

beforeAll(async () => {
  vncServer = new WebSocketServer({ host: HOST_ADDR, port: 6901 });
  vncServer.on("connection", (ws) => {
    hostSockets.add(ws);
    ws.on("close", () => hostSockets.delete(ws));
  });
  await new Promise<void>((resolve, reject) => {
    vncServer.once("listening", () => resolve());
    vncServer.once("error", reject);
  });
  const caps = { SSE_MAX_STREAMS_PER_USER: String(SSE_CAP), VNC_MAX_WEBSOCKETS_PER_USER: String(WS_CAP), SSE_HEARTBEAT_SECONDS: "1" };
  h = await createApiHarness({ PUBLIC_BASE_URL: "http://127.0.0.1:1", ...caps });
  h2 = await h.withConfig({});
  api = await h.listen();
  api2 = await h2.listen();
  admin = await h.adminToken();
  [u, v] = await Promise.all([h.createUser(), h.createUser()]);
  hostId = (await insertHostRow(h.database.sql, { userId: u.id })).id;
  await h.database.sql`update hosts set management_address = ${HOST_ADDR} where id = ${hostId}`;
});
afterAll(async () => {
  await h?.close();
  for (const ws of hostSockets) ws.terminate();
  await new Promise((resolve) => vncServer?.close(resolve));
});

async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface OpenStream {
  close(): void;
}

/** GET an SSE route over a real socket; resolves once the first bytes arrived (or with the refusal). */
async function sse(base: string, path: string, token: string): Promise<{ status: number; body: any; headers: Headers; stream?: OpenStream }> {
  const abort = new AbortController();
  const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` }, signal: abort.signal });
  if (res.status !== 200) return { status: res.status, headers: res.headers, body: await res.json() };
  const reader = res.body!.getReader();
  const first = await reader.read();
  expect(new TextDecoder().decode(first.value)).toContain(": connected");
  // Keep reading (a stream nobody reads would be dropped as slow, freeing its slot by itself).
  void (async () => {
    try {
      for (;;) if ((await reader.read()).done) break;
    } catch {
      // aborted
    }
  })();
  return { status: 200, headers: res.headers, body: null, stream: { close: () => abort.abort() } };
}

describe("SSE streams per user (SSE_MAX_STREAMS_PER_USER)", () => {
  it("the stream beyond the cap is 429 too_many_connections; other users and the admin are not affected; closing one frees its slot", async () => {
    const open: OpenStream[] = [];
    for (let i = 0; i < SSE_CAP; i++) {
      const r = await sse(api.url, "/v1/user/sse", u.token);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      open.push(r.stream!);
    }
    const refused = await sse(api.url, "/v1/user/sse", u.token);
    expect(refused.status, JSON.stringify(refused.body)).toBe(429);
    expect(refused.body).toMatchObject({ code: "too_many_connections", retry_after: 5 });
    expect(refused.headers.get("retry-after")).toBe("5");
    expect(refused.headers.get("content-type")).toMatch(/^application\/json/);
    // A tenant retrying in a loop: every attempt refused, the log gets one warn line (rate-limited), no token in it.
    for (let i = 0; i < 20; i++) expect((await sse(api.url, "/v1/user/sse", u.token)).status).toBe(429);
    const refusals = h.logs.filter((l) => l.includes("connection refused: too many open for this user"));
    expect(refusals.length).toBeGreaterThanOrEqual(1);
    expect(refusals.length).toBeLessThanOrEqual(2);
    expect(JSON.parse(refusals[0]!)).toMatchObject({ kind: "sse", actor_id: u.id, limit: SSE_CAP });
    expect(refusals.join("\n")).not.toContain(u.token);

    // Another tenant and the admin each have their own slots.
    const other = await sse(api.url, "/v1/user/sse", v.token);
    expect(other.status).toBe(200);
    const adm = await sse(api.url, "/v1/admin/sse", admin);
    expect(adm.status).toBe(200);

    // The client goes away: its slot comes back (the server sees the socket close).
    open.shift()!.close();
    const again = await waitFor("a freed SSE slot", async () => {
      const r = await sse(api.url, "/v1/user/sse", u.token);
      return r.status === 200 ? r : null;
    });
    open.push(again.stream!);
    expect((await sse(api.url, "/v1/user/sse", u.token)).status).toBe(429);

    for (const s of [...open, other.stream!, adm.stream!]) s.close();
    await waitFor("every slot of u released", async () => (await h.deps.redis.zcard(slotKey(h.prefix, "sse", u.id))) === 0);
  });

  it("the cap holds across api replicas (counted in Redis)", async () => {
    const w = await h.createUser();
    const open: OpenStream[] = [];
    for (let i = 0; i < SSE_CAP; i++) {
      const r = await sse(i % 2 ? api2.url : api.url, "/v1/user/sse", w.token);
      expect(r.status).toBe(200);
      open.push(r.stream!);
    }
    expect((await sse(api2.url, "/v1/user/sse", w.token)).status).toBe(429);
    expect((await sse(api.url, "/v1/user/sse", w.token)).status).toBe(429);
    for (const s of open) s.close();
  });

  it("slots left behind by a crashed api expire: they do not lock the user out", async () => {
    const w = await h.createUser();
    // What an api killed with SSE_CAP open streams leaves: members whose refresh stopped, now past their expiry.
    const key = slotKey(h.prefix, "sse", w.id);
    const [sec] = await h.deps.redis.time();
    for (let i = 0; i < SSE_CAP; i++) await h.deps.redis.zadd(key, Number(sec) * 1000 - 1000, `crashed-${i}-${randomBytes(4).toString("hex")}`);
    const open: OpenStream[] = [];
    for (let i = 0; i < SSE_CAP; i++) {
      const r = await sse(api.url, "/v1/user/sse", w.token);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      open.push(r.stream!);
    }
    expect(await h.deps.redis.zcard(key)).toBe(SSE_CAP);
    for (const s of open) s.close();
  });
});

describe("desktop WebSockets per user (VNC_MAX_WEBSOCKETS_PER_USER)", () => {
  const url = (portal: "admin" | "user") => `${api.url.replace("http", "ws")}/v1/${portal}/hosts/${hostId}/vnc/websockify`;
  const open = (portal: "admin" | "user", token: string) => openWs(url(portal), { headers: { authorization: `Bearer ${token}` } });

  it("the upgrade beyond the cap is a 429 HTTP response and no socket reaches the host; closing one frees its slot", async () => {
    const sockets = [await open("user", u.token), await open("user", u.token)];
    await waitFor("two sockets at the host", async () => hostSockets.size === WS_CAP);

    const err = await open("user", u.token).catch((e: { status: number; body: string }) => e);
    expect((err as { status: number }).status).toBe(429);
    expect(JSON.parse((err as { body: string }).body)).toMatchObject({ code: "too_many_connections" });
    // The refused upgrade never dialed the host.
    expect(hostSockets.size).toBe(WS_CAP);

    // The admin's sockets count under the admin's own id: the owner's cap does not lock the admin
    // out of this desktop, and the admin has a cap of their own.
    const adminSockets = [await open("admin", admin), await open("admin", admin)];
    const adminErr = await open("admin", admin).catch((e: { status: number }) => e);
    expect((adminErr as { status: number }).status).toBe(429);
    for (const s of adminSockets) s.ws.close();

    // The owner closes one desktop socket: its slot comes back.
    const first = sockets.shift()!;
    first.ws.close();
    await closed(first.ws);
    const again = await waitFor("a freed WebSocket slot", async () => open("user", u.token).catch(() => null));
    sockets.push(again);
    for (const s of sockets) s.ws.close();
    await waitFor("every WebSocket slot released", async () => {
      const n = (await h.deps.redis.zcard(slotKey(h.prefix, "vnc", u.id))) + (await h.deps.redis.zcard(slotKey(h.prefix, "vnc", (await adminId())!)));
      return n === 0;
    });
  });

  it("a socket the host closes frees its slot too", async () => {
    const s1 = await open("user", u.token);
    const s2 = await open("user", u.token);
    await waitFor("two sockets at the host", async () => hostSockets.size === WS_CAP);
    for (const ws of hostSockets) ws.terminate();
    await Promise.all([closed(s1.ws), closed(s2.ws)]);
    const back = await waitFor("both slots back", async () => {
      const a = await open("user", u.token).catch(() => null);
      if (!a) return null;
      const b = await open("user", u.token).catch(() => null);
      if (!b) {
        a.ws.close();
        return null;
      }
      return [a, b];
    });
    for (const s of back) s.ws.close();
  });
});

async function adminId(): Promise<string | undefined> {
  const [row] = await h.database.sql<{ id: string }[]>`select id from users where role = 'admin'`;
  return row?.id;
}
