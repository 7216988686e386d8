import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, createApiHarness, type ListeningApi } from "../../shared/test/api-harness.js";
import { openWs } from "../../shared/test/vnc.js";

/**
 * The VNC proxy's edges that need no container (the Docker suite test/docker/vnc-proxy.test.ts
 * covers the bridge itself): errors on WebSocket upgrades, and upgrades that are not for the proxy.
 */
let h: ApiHarness;
let api: ListeningApi;
let admin: string;
let hostId: string;

/** One raw HTTP/1.1 exchange; resolves with everything the server sent before closing. */
function raw(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1", () => s.write(text));
    let out = "";
    s.setEncoding("utf8");
    s.on("data", (d: string) => (out += d));
    s.on("end", () => resolve(out));
    s.on("error", reject);
  });
}

beforeAll(async () => {
  h = await createApiHarness({ PUBLIC_BASE_URL: "http://cloud.example.test:8080" });
  api = await h.listen();
  admin = await h.adminToken();
  const u = await h.createUser();
  // No worker runs here: the host stays `pending`.
  const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } });
  hostId = res.body.host.id;
});
afterAll(async () => {
  await h?.close();
});

describe("VNC WebSocket upgrades", () => {
  const url = () => `${api.url.replace("http", "ws")}/v1/admin/hosts/${hostId}/vnc/websockify`;

  it("answers 401 with the error envelope and WWW-Authenticate without a token", async () => {
    const err = await openWs(url()).catch((e) => e);
    expect(err.status).toBe(401);
    expect(JSON.parse(err.body)).toEqual({ error: "authentication required", code: "unauthorized" });
    expect(err.headers["www-authenticate"]).toBe("Bearer");
  });

  it("answers 409 host_not_running for a host that is not running", async () => {
    const err = await openWs(url(), { headers: { authorization: `Bearer ${admin}` } }).catch((e) => e);
    expect(err.status).toBe(409);
    expect(JSON.parse(err.body).code).toBe("host_not_running");
    const res = await fetch(`${api.url}/v1/admin/hosts/${hostId}/vnc/`, { headers: { authorization: `Bearer ${admin}` } });
    expect(res.status).toBe(409);
  });

  it("checks the Origin before anything else", async () => {
    const err = await openWs(url(), { origin: "http://127.0.0.1:1" }).catch((e) => e);
    expect(err.status).toBe(403);
  });

  it("serves other upgrade requests as the plain requests they are", async () => {
    const h2c = await raw(api.port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n");
    expect(h2c).toMatch(/^HTTP\/1\.1 200 /);
    expect(h2c).toContain('"status"');
    const ws = await openWs(`${api.url.replace("http", "ws")}/v1/admin/users`, { headers: { authorization: `Bearer ${admin}` } }).catch((e) => e);
    expect(ws.status).toBe(200);
    const notVnc = await openWs(`${api.url.replace("http", "ws")}/v1/nope`).catch((e) => e);
    expect(notVnc.status).toBe(404);
  });
});
