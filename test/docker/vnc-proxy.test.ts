import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { events, users } from "../../shared/db/schema/index.js";
import { type ApiHarness, createApiHarness, findSecrets, type ListeningApi, type TestUser } from "../../shared/test/api-harness.js";
import {
  capturedRequests,
  closed,
  desktopCookie,
  floodCount,
  inHost,
  openWs,
  startCapture,
  stopCapture,
  waitForPort6901,
} from "../../shared/test/vnc.js";
import { removeInstanceObjects, startTestWorker, waitForTask, type WorkerHarness } from "../../shared/test/worker-harness.js";

/**
 * The VNC reverse proxy (docs/api.md#vnc-proxy) against real hosts: the real desktop
 * (TigerVNC + noVNC/websockify) for the page and the RFB handshake, and a capture server on :6901
 * for what reaches the host, WebSocket echo and backpressure.
 */
const ORIGIN = "http://cloud.example.test:8080";
/** A fresh desktop session of the owner's, opened the browser's way (ticket → 303 → cookie). */
const ownerCookie = () => desktopCookie(api.url, "user", hostId, owner.token);
const RECHECK_MS = 500;

let h: ApiHarness;
let w: WorkerHarness;
let api: ListeningApi;
let admin: string;
let owner: TestUser;
let other: TestUser;
let hostId: string;
let otherHostId: string;

const vnc = (portal: "admin" | "user", id: string, rest = "") => `/v1/${portal}/hosts/${id}/vnc/${rest}`;
const wsUrl = (path: string) => `${api.url.replace(/^http/, "ws")}${path}`;
const errorCode = async (res: Response) => ((await res.json()) as { code: string }).code;
const header = (req: { headers: [string, string][] }, name: string) => req.headers.filter(([k]) => k.toLowerCase() === name).map(([, v]) => v);

async function createRunningHost(userId: string): Promise<string> {
  const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: userId } });
  expect(res.status, res.text).toBe(202);
  expect((await waitForTask(h, res.body.task_id)).status).toBe("succeeded");
  return res.body.host.id as string;
}

beforeAll(async () => {
  h = await createApiHarness({ PUBLIC_BASE_URL: ORIGIN }, { vncRecheckMs: RECHECK_MS });
  w = await startTestWorker(h);
  api = await h.listen();
  admin = await h.adminToken();
  owner = await h.createUser();
  other = await h.createUser();
  [hostId, otherHostId] = await Promise.all([createRunningHost(owner.id), createRunningHost(other.id)]);
  await Promise.all([waitForPort6901(hostId), waitForPort6901(otherHostId)]);
}, 240_000);

afterAll(async () => {
  await api?.close();
  await w?.stop();
  if (h) removeInstanceObjects(h.prefix);
  await h?.close();
});

describe("the real desktop through the proxy", () => {
  it("serves the noVNC client page to the admin with the header (103) and adds the security headers", async () => {
    const res = await fetch(api.url + vnc("admin", hostId), { headers: { authorization: `Bearer ${admin}` } });
    expect(res.status).toBe(200);
    const page = await res.text();
    // Our index opens vnc.html with the WebSocket path under the proxy's prefix.
    expect(page).toContain("vnc.html?");
    expect(page).toContain('"websockify"');
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("content-security-policy")).toBe("frame-ancestors 'none'");

    const client = await fetch(api.url + vnc("admin", hostId, "vnc.html"), { headers: { authorization: `Bearer ${admin}` } });
    expect(client.status).toBe(200);
    expect(await client.text()).toContain("noVNC");
    const script = await fetch(api.url + vnc("admin", hostId, "app/ui.js"), { headers: { authorization: `Bearer ${admin}` } });
    expect(script.status).toBe(200);
    expect(script.headers.get("content-type")).toMatch(/javascript/);
  });

  it("answers 401 without a token, 403 for a user on the admin route, 200 for the owner, 404 for anyone else (104)", async () => {
    const none = await fetch(api.url + vnc("admin", hostId));
    expect(none.status).toBe(401);
    expect((await errorCode(none))).toBe("unauthorized");
    expect((await fetch(api.url + vnc("user", hostId))).status).toBe(401);
    const bad = await fetch(api.url + vnc("user", hostId), { headers: { authorization: "Bearer not-a-jwt" } });
    expect(bad.status).toBe(401);

    const userOnAdmin = await fetch(api.url + vnc("admin", hostId), { headers: { authorization: `Bearer ${owner.token}` } });
    expect(userOnAdmin.status).toBe(403);
    expect((await errorCode(userOnAdmin))).toBe("forbidden");

    const own = await fetch(api.url + vnc("user", hostId), { headers: { authorization: `Bearer ${owner.token}` } });
    expect(own.status).toBe(200);
    expect(await own.text()).toContain("vnc.html?");

    for (const [token, id] of [
      [other.token, hostId],
      [owner.token, otherHostId],
      [owner.token, "00000000-0000-4000-8000-000000000000"],
      [owner.token, "not-a-uuid"],
    ] as const) {
      const res = await fetch(api.url + vnc("user", id), { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(404);
      expect((await errorCode(res))).toBe("host_not_found");
    }
    const wsOther = await openWs(wsUrl(vnc("user", hostId, "websockify")), { headers: { authorization: `Bearer ${other.token}` } }).catch((e) => e);
    expect(wsOther.status).toBe(404);
  });

  it("redirects …/vnc to …/vnc/ keeping the query", async () => {
    const res = await fetch(`${api.url}/v1/admin/hosts/${hostId}/vnc?y=abc&x=1`, { redirect: "manual" });
    expect(res.status).toBe(301);
    expect(res.headers.get("location")).toBe(`${vnc("admin", hostId)}?y=abc&x=1`);
  });

  it("opens the desktop by one-time ticket: 303 to the bare prefix with an HttpOnly SameSite=Strict path cookie; the cookie alone then works (105, issue 10 §1)", async () => {
    const session = await fetch(`${api.url}${vnc("user", hostId)}session`, { method: "POST", headers: { authorization: `Bearer ${owner.token}` } });
    expect(session.status).toBe(200);
    const url = new URL(((await session.json()) as { url: string }).url);
    expect(url.toString()).not.toContain(owner.token);
    const res = await fetch(`${api.url}${url.pathname}${url.search}`, { redirect: "manual" });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe(vnc("user", hostId));
    const cookies = res.headers.getSetCookie();
    expect(cookies).toHaveLength(1);
    const c = cookies[0]!;
    const id = /^ccp_vnc=([^;]+);/.exec(c)?.[1];
    expect(id).toBeTruthy();
    expect(c).not.toContain(owner.token);
    expect(c).toContain(`Path=${vnc("user", hostId)}`);
    expect(c).toContain("HttpOnly");
    expect(c).toContain("SameSite=Strict");
    expect(c).not.toContain("Secure"); // PUBLIC_BASE_URL is http here

    const page = await fetch(api.url + vnc("user", hostId), { headers: { cookie: `ccp_vnc=${id}` } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("vnc.html?");
    const sub = await fetch(api.url + vnc("user", hostId, "vnc.html"), { headers: { cookie: `ccp_vnc=${id}` } });
    expect(sub.status).toBe(200);
    expect(sub.headers.getSetCookie()).toEqual([]);
    expect(sub.headers.get("referrer-policy")).toBe("no-referrer");
    // Another user's desktop session gets nothing from this host.
    const others = await desktopCookie(api.url, "user", otherHostId, other.token);
    expect((await fetch(api.url + vnc("user", hostId, "vnc.html"), { headers: { cookie: `ccp_vnc=${others}` } })).status).toBe(401);
    // A login token is no longer accepted in the URL.
    expect((await fetch(`${api.url}${vnc("user", hostId)}?token=${owner.token}`)).status).toBe(401);
  });

  it("bridges a WebSocket to the real VNC server: the RFB handshake arrives through the proxy", async () => {
    const { ws, status, messages } = await openWs(wsUrl(vnc("user", hostId, "websockify")), {
      headers: { cookie: `ccp_vnc=${await ownerCookie()}` },
      origin: ORIGIN,
    });
    expect(status).toBe(101);
    await expect.poll(() => messages.length, { timeout: 15_000 }).toBeGreaterThan(0);
    expect(messages[0]!.toString("latin1")).toMatch(/^RFB 003\.00\d\n$/);
    // The first viewer opens the browser window next to the terminal (both as the host user).
    await expect.poll(() => inHost(hostId, "pgrep -u workspace -x firefox-esr || true"), { timeout: 30_000 }).not.toBe("");
    expect(inHost(hostId, "pgrep -u workspace -x xterm || true")).not.toBe("");
    ws.close();
    await closed(ws);
  });

  it("survives a desktop crash: the supervisor brings X and the VNC bridge back", async () => {
    const before = inHost(hostId, "pgrep -x Xtigervnc").trim();
    inHost(hostId, "pkill -KILL -x Xtigervnc");
    await expect.poll(() => inHost(hostId, "pgrep -x Xtigervnc || true").trim(), { timeout: 30_000 }).not.toMatch(new RegExp(`^(${before})?$`));
    // Nothing runs as root but the init's sshd; the desktop is the host user's.
    expect(inHost(hostId, "ps -o user= -p $(pgrep -x Xtigervnc)").trim()).toBe("workspace");
    await expect
      .poll(
        async () => {
          const r = await openWs(wsUrl(vnc("user", hostId, "websockify")), { headers: { cookie: `ccp_vnc=${await ownerCookie()}` } }).catch(() => null);
          if (!r) return "";
          await expect.poll(() => r.messages.length, { timeout: 10_000 }).toBeGreaterThan(0);
          r.ws.close();
          return r.messages[0]!.toString("latin1");
        },
        { timeout: 30_000, interval: 500 },
      )
      .toMatch(/^RFB 003\.00\d\n$/);
  });

  it("refuses a WebSocket from a foreign Origin with 403 and accepts PUBLIC_BASE_URL's (107)", async () => {
    const foreign = await openWs(wsUrl(vnc("admin", hostId, "websockify")), {
      headers: { authorization: `Bearer ${admin}` },
      origin: "http://evil.example.test",
    }).catch((e) => e);
    expect(foreign.status).toBe(403);
    expect(JSON.parse(foreign.body).code).toBe("forbidden");
    const ok = await openWs(wsUrl(vnc("admin", hostId, "websockify")), { headers: { authorization: `Bearer ${admin}` }, origin: ORIGIN });
    expect(ok.status).toBe(101);
    ok.ws.close();
  });
});

describe("what reaches the host (capture server on :6901)", () => {
  beforeAll(async () => {
    await startCapture(hostId);
  }, 60_000);

  it("never forwards Authorization, Cookie or the token parameter, and drops the host's Set-Cookie (106)", async () => {
    const viaHeader = await fetch(`${api.url}${vnc("admin", hostId, "some/page")}?x=1`, {
      method: "POST",
      headers: { authorization: `Bearer ${admin}`, cookie: "ccp_vnc=abc; other=1", "x-custom": "kept", "content-type": "text/plain" },
      body: "hello body",
    });
    expect(viaHeader.status).toBe(200);
    expect(await viaHeader.text()).toBe("capture-ok");
    expect(viaHeader.headers.get("x-upstream")).toBe("capture");
    expect(viaHeader.headers.getSetCookie()).toEqual([]);

    const desktop = await ownerCookie();
    const viaCookie = await fetch(`${api.url}${vnc("user", hostId, "q")}?a=1&b=2`, {
      headers: { cookie: `ccp_vnc=${desktop}`, referer: `${ORIGIN}${vnc("user", hostId)}` },
    });
    expect(viaCookie.status).toBe(200);
    expect(viaCookie.headers.getSetCookie()).toEqual([]);

    const ws = await openWs(`${wsUrl(vnc("user", hostId, "ws"))}?keep=yes`, { origin: ORIGIN, headers: { cookie: `ccp_vnc=${desktop}` } });
    expect(ws.status).toBe(101);
    expect(ws.headers["set-cookie"]).toBeUndefined();
    expect(ws.headers["x-content-type-options"]).toBe("nosniff");
    ws.ws.close();
    await closed(ws.ws);

    const seen = capturedRequests(hostId);
    expect(seen.map((r) => `${r.method} ${r.path}`)).toEqual(["POST /some/page?x=1", "GET /q?a=1&b=2", "GET /ws?keep=yes"]);
    for (const r of seen) {
      expect(header(r, "authorization")).toEqual([]);
      expect(header(r, "cookie")).toEqual([]);
      expect(r.path).not.toContain("token");
      expect(JSON.stringify(r)).not.toContain(owner.token);
      expect(JSON.stringify(r)).not.toContain(admin);
      expect(JSON.stringify(r)).not.toContain(desktop);
      expect(header(r, "referer")).toEqual([]);
      expect(header(r, "host")[0]).toMatch(/^\d+\.\d+\.\d+\.\d+:6901$/);
    }
    expect(header(seen[0]!, "x-custom")).toEqual(["kept"]);
    expect(seen[0]!.body_len).toBe("hello body".length);
    expect(header(seen[2]!, "upgrade")[0]?.toLowerCase()).toBe("websocket");
    expect(header(seen[2]!, "sec-websocket-key")).toHaveLength(1);
  });

  it("round-trips WebSocket messages, text and binary, and records vnc.session events with byte counts", async () => {
    const { ws, messages: got } = await openWs(wsUrl(vnc("user", hostId, "echo")), { headers: { cookie: `ccp_vnc=${await ownerCookie()}` } });
    const big = Buffer.alloc(300_000, 7);
    ws.send("hello");
    ws.send(big);
    await expect.poll(() => got.length, { timeout: 15_000 }).toBe(2);
    expect(got[0]!.toString()).toBe("hello");
    expect(got[1]!.equals(big)).toBe(true);
    ws.close();
    await closed(ws);

    type Closed = { bytes_in: number; bytes_out: number; duration_ms: number };
    const closedOfThisSession = async () => {
      const rows = await h.database.db.select().from(events).where(eq(events.hostId, hostId));
      return rows.filter((e) => e.type === "vnc.session.closed").find((e) => (e.metadata as Closed).bytes_in > big.length);
    };
    await expect.poll(closedOfThisSession, { timeout: 10_000 }).toBeDefined();
    const row = (await closedOfThisSession())!;
    expect(row.userId).toBe(owner.id);
    const last = row.metadata as Closed;
    const opened = (await h.database.db.select().from(events).where(eq(events.hostId, hostId))).filter((e) => e.type === "vnc.session.opened");
    expect(opened.length).toBeGreaterThan(0);
    expect(opened.every((e) => e.userId === owner.id)).toBe(true);
    expect(last!.bytes_out).toBeGreaterThan(big.length);
    expect(last!.duration_ms).toBeGreaterThanOrEqual(0);
    // The same bytes reach ccp_desktop_bytes_total (README "Observability").
    const text = await h.deps.metrics.registry.metrics();
    const total = (d: string) => Number(new RegExp(`^ccp_desktop_bytes_total\\{direction="${d}"\\} (\\d+)$`, "m").exec(text)?.[1]);
    expect(total("in"), text).toBeGreaterThan(big.length);
    expect(total("out"), text).toBeGreaterThan(big.length);
    // And its session record (docs/sessions.md): the owner's, from the client's address.
    const sessionRow = async () => {
      const res = await h.request("GET", `/v1/admin/sessions?host_id=${hostId}&kind=desktop&open=false&limit=200`, { token: admin });
      return (res.body.sessions as { bytes_in: number }[]).find((x) => x.bytes_in > big.length);
    };
    await expect.poll(sessionRow, { timeout: 10_000 }).toBeDefined();
    expect(await sessionRow()).toMatchObject({
      kind: "desktop",
      user_id: owner.id,
      method: "user",
      source_ip: "127.0.0.1",
      open: false,
      end_reason: "closed",
      recording: "off",
      has_recording: false,
    });
    expect((await sessionRow())!.bytes_in).toBeGreaterThan(big.length);
  });

  it("respects backpressure: a client that stops reading stops the host's sender instead of filling the API's memory", async () => {
    const total = 1024 * 1024 * 1024;
    const { ws } = await openWs(wsUrl(vnc("user", hostId, `flood?bytes=${total}`)), {
      headers: { cookie: `ccp_vnc=${await ownerCookie()}` },
      collect: false,
    });
    let received = 0;
    ws.on("message", (d: Buffer) => (received += d.length));
    await expect.poll(() => received, { timeout: 15_000 }).toBeGreaterThan(4 * 1024 * 1024);
    // Stop reading from the socket: the kernel buffers fill, then the proxy must stop reading the host.
    (ws as unknown as { _socket: import("node:net").Socket })._socket.pause();
    let last = -1;
    let stable = 0;
    while (stable < 3) {
      await new Promise((r) => setTimeout(r, 500));
      const now = floodCount(hostId);
      stable = now === last ? stable + 1 : 0;
      last = now;
    }
    // Everything the host managed to send sits in socket buffers and at most a few stream chunks.
    expect(last).toBeLessThan(64 * 1024 * 1024);
    expect(last).toBeLessThan(total);
    ws.terminate();
    await closed(ws);
  });

  it("answers 502 upstream_unreachable when nothing listens on :6901 in a running host (108)", async () => {
    stopCapture(hostId);
    const res = await fetch(api.url + vnc("admin", hostId), { headers: { authorization: `Bearer ${admin}` } });
    expect(res.status).toBe(502);
    expect((await errorCode(res))).toBe("upstream_unreachable");
    const ws = await openWs(wsUrl(vnc("admin", hostId, "websockify")), { headers: { authorization: `Bearer ${admin}` } }).catch((e) => e);
    expect(ws.status).toBe(502);
    expect(JSON.parse(ws.body).code).toBe("upstream_unreachable");
    await startCapture(hostId);
  }, 60_000);

  it("closes an open WebSocket when its token stops passing the checks, without any published revocation", async () => {
    const desktop = await ownerCookie();
    const { ws } = await openWs(wsUrl(vnc("user", hostId, "echo")), { headers: { cookie: `ccp_vnc=${desktop}` } });
    const done = closed(ws);
    // A revocation nobody published (as if the pub/sub message was lost): only the re-check sees it.
    await h.database.db.update(users).set({ tokenVersion: sql`${users.tokenVersion} + 1` }).where(eq(users.id, owner.id));
    await done;
    expect(h.deps.vnc.count()).toBe(0);
    const again = await openWs(wsUrl(vnc("user", hostId, "echo")), { headers: { cookie: `ccp_vnc=${desktop}` } }).catch((e) => e);
    expect(again.status).toBe(401);
    owner = { ...owner, token: (await h.login(owner.username, owner.password)).body.token };
  });

  it("closes the socket when the host is stopped mid-session, then answers 409 host_not_running (108)", async () => {
    const { ws } = await openWs(wsUrl(vnc("admin", hostId, "echo")), { headers: { authorization: `Bearer ${admin}` } });
    const done = closed(ws);
    const stop = await h.request("POST", `/v1/admin/hosts/${hostId}/stop`, { token: admin });
    expect(stop.status).toBe(202);
    await done;
    expect((await waitForTask(h, stop.body.task_id)).status).toBe("succeeded");
    const res = await fetch(api.url + vnc("admin", hostId), { headers: { authorization: `Bearer ${admin}` } });
    expect(res.status).toBe(409);
    expect((await errorCode(res))).toBe("host_not_running");
    const wsRes = await openWs(wsUrl(vnc("user", hostId, "echo")), { headers: { authorization: `Bearer ${owner.token}` } }).catch((e) => e);
    expect(wsRes.status).toBe(409);
  }, 120_000);
});

describe("revocation", () => {
  it("closes the user's open VNC WebSocket when the admin disables them (109)", async () => {
    const { ws } = await openWs(wsUrl(vnc("user", otherHostId, "websockify")), { headers: { authorization: `Bearer ${other.token}` } });
    const done = closed(ws);
    const res = await h.request("PATCH", `/v1/admin/users/${other.id}`, { token: admin, body: { status: "disabled" } });
    expect(res.status).toBe(200);
    await done;
    const again = await fetch(api.url + vnc("user", otherHostId), { headers: { authorization: `Bearer ${other.token}` } });
    expect(again.status).toBe(401);
  });

  it("never logs or echoes a token", () => {
    const found = findSecrets(h.logs, [admin, owner.token, other.token]);
    expect(found).toEqual([]);
  });
});
