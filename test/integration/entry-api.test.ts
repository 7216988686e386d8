import { execFileSync } from "node:child_process";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve, type ServerType } from "@hono/node-server";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEntryApp } from "../../api/app.js";
import { secretAt } from "../../shared/crypto/secrets.js";
import { redisKey } from "../../shared/redis.js";
import { consumeTicket } from "../../sshd/credentials.js";
import type { Target } from "../../sshd/resolve-target.js";
import { type ApiHarness, createApiHarness, findSecrets, type TestUser } from "../../shared/test/api-harness.js";

/** docs/api.md#entry, docs/architecture.md#processes (ENTRY_LISTEN_ADDR) and checklist items 121–127 at the HTTP level. */
let h: ApiHarness;
let admin: string;
let dir: string;
const BASE = "http://cloud.example.test:8080";
const secrets: string[] = [];

beforeAll(async () => {
  h = await createApiHarness({ PUBLIC_BASE_URL: BASE });
  admin = await h.adminToken();
  dir = mkdtempSync(join(tmpdir(), "ccp-entry-"));
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await h?.close();
});

let ipSeq = 1;
const freshIp = () => `198.19.${Math.floor(ipSeq / 250)}.${(ipSeq++ % 250) + 1}`;

type HostUser = TestUser & { hostId: string; shortId: string; sshPassword: string };

async function userWithHost(status = "running"): Promise<HostUser> {
  const u = await h.createUser();
  const shortId = randomBytes(6).toString("hex").slice(0, 6);
  const sshPassword = randomBytes(10).toString("hex");
  secrets.push(u.password, sshPassword);
  const id = randomUUID();
  const enc = h.deps.secrets.encrypt(sshPassword, secretAt.host(id, "ssh_password_enc"));
  const [row] = await h.database.sql<{ id: string }[]>`
    insert into hosts (id, user_id, short_id, status, desired_state, ssh_password_enc)
    values (${id}, ${u.id}, ${shortId}, ${status}, ${status === "running" ? "running" : "stopped"}, ${enc})
    returning id`;
  return { ...u, hostId: row!.id, shortId, sshPassword };
}

const auth = (shortId: string, password: string, ip = freshIp()) =>
  h.request("POST", `/v1/entry/${shortId}/auth`, { body: { password }, ip });

const ipCount = async (ip: string) => Number((await h.deps.redis.get(redisKey(h.prefix, "authfail", "ip", ip))) ?? 0);

describe("GET /entry/{shortId}", () => {
  it("serves a script embedding the short id and PUBLIC_BASE_URL, valid for bash -n (item 121)", async () => {
    const u = await userWithHost();
    const res = await h.request("GET", `/entry/${u.shortId}`, { headers: { host: "evil.example.net" } });
    expect(res.status, res.text).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/x-shellscript; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.text).toContain(`BASE_URL='${BASE}'\n`);
    expect(res.text).toContain(`SHORT_ID='${u.shortId}'\n`);
    expect(res.text).not.toContain("evil.example.net");
    expect(res.text).not.toMatch(/__CCP_[A-Z_]+__/);
    expect(res.text).toContain('"Password for $SHORT_ID: "');
    const file = join(dir, "entry.sh");
    writeFileSync(file, res.text);
    expect(() => execFileSync("bash", ["-n", file], { stdio: "pipe" })).not.toThrow();
  });

  it("answers malformed, unknown and deleting ids with a JSON 404, never a script, counting each against the IP (item 121)", async () => {
    const deleting = await userWithHost("deleting");
    const ip = freshIp();
    const paths = ["/entry/ABCDEF", "/entry/abc", "/entry/abc%22%3Bid", "/entry/zzzzz9", `/entry/${deleting.shortId}`, "/entry/abc1234"];
    for (const path of paths) {
      const res = await h.request("GET", path, { ip });
      expect(res.status, `${path}: ${res.text}`).toBe(404);
      expect(res.headers.get("content-type")).toBe("application/json; charset=utf-8");
      expect(res.body).toEqual({ error: expect.any(String), code: "not_found", error_code: "not_found", message: expect.any(String) });
      expect(res.text).not.toContain("bash");
    }
    expect(await ipCount(ip)).toBe(paths.length);
  });
});

describe("POST /v1/entry/{shortId}/auth", () => {
  it("answers a running host with ready and a one-time ticket, never the host's SSH password (item 122, issue 10 §5)", async () => {
    const u = await userWithHost("running");
    const before = Date.now();
    const res = await auth(u.shortId, u.password);
    expect(res.status, res.text).toBe(200);
    const [key] = await h.database.sql<{ public_key: string }[]>`select public_key from system_keys where name = 'ssh_proxy_host_key'`;
    const [alg, blob] = key!.public_key.split(" ");
    // The attack: the answer (which lands in the script's memory and environment) must not hold
    // anything that logs in after this one login.
    expect(res.text).not.toContain(u.sshPassword);
    expect(res.text).not.toContain("ssh_pass\"");
    const ticket = res.body.ssh_ticket as string;
    expect(ticket).toMatch(/^ccpt_[A-Za-z0-9]{32}$/);
    secrets.push(ticket);
    const [row] = await h.database.sql<{ task_id: string | null; host_id: string; user_id: string; used_at: Date | null; expires_at: Date }[]>`
      select task_id, host_id, user_id, used_at, expires_at from ssh_tickets
      where ticket_hash = ${createHash("sha256").update(ticket).digest("hex")}`;
    expect(row).toMatchObject({ task_id: null, host_id: u.hostId, user_id: u.id, used_at: null });
    // HANDOFF_TICKET_TTL_SECONDS (120) from now, give or take the request.
    const ttl = new Date(row!.expires_at).getTime() - before;
    expect(ttl).toBeGreaterThan(115_000);
    expect(ttl).toBeLessThan(125_000);
    expect(res.body).toEqual({
      status: "ready",
      ssh_user: u.shortId,
      ssh_ticket: ticket,
      ssh_host: "cloud.example.test",
      ssh_port: 2222,
      host_key: key!.public_key,
      known_hosts_line: `[cloud.example.test]:2222 ${alg} ${blob}`,
    });
    const [ev] = await h.database.sql<{ actor_id: string; metadata: Record<string, string> }[]>`
      select actor_id, metadata from events where type = 'entry.auth.succeeded' and host_id = ${u.hostId}`;
    expect(ev).toMatchObject({ actor_id: u.id, metadata: { short_id: u.shortId, outcome: "ready" } });
    expect(JSON.stringify(ev)).not.toContain(u.sshPassword);
    expect(JSON.stringify(ev)).not.toContain(ticket);
    expect(await h.database.sql`select 1 from tasks where host_id = ${u.hostId}`).toHaveLength(0);
  });

  it("an entry ticket logs in once, only to its host, and each sign-in mints a new one (issue 10 §5)", async () => {
    const u = await userWithHost("running");
    const other = await userWithHost("running");
    const first = await auth(u.shortId, u.password);
    const second = await auth(u.shortId, u.password);
    expect(first.status, first.text).toBe(200);
    expect(second.status, second.text).toBe(200);
    expect(second.body.ssh_ticket).not.toBe(first.body.ssh_ticket);
    secrets.push(first.body.ssh_ticket, second.body.ssh_ticket);
    // What the SSH proxy runs for a `ccpt_` password (sshd/credentials.ts), against Postgres.
    const target = (hostId: string) => ({ host: { id: hostId } }) as Target;
    const now = new Date();
    expect(await consumeTicket(h.database.db, target(other.hostId), first.body.ssh_ticket, now)).toBe(false);
    expect(await consumeTicket(h.database.db, target(u.hostId), first.body.ssh_ticket, now)).toBe(true);
    expect(await consumeTicket(h.database.db, target(u.hostId), first.body.ssh_ticket, now)).toBe(false);
    // The second ticket is independent of the first, and expires.
    expect(await consumeTicket(h.database.db, target(u.hostId), second.body.ssh_ticket, new Date(now.getTime() + 121_000))).toBe(false);
    expect(await consumeTicket(h.database.db, target(u.hostId), second.body.ssh_ticket, now)).toBe(true);
  });

  it("starts a stopped host: 202 with a task, shared by concurrent and repeated calls, then ready (item 123)", async () => {
    const u = await userWithHost("stopped");
    const all = await Promise.all([auth(u.shortId, u.password), auth(u.shortId, u.password), auth(u.shortId, u.password)]);
    for (const r of all) expect(r.status, r.text).toBe(202);
    const first = all[0]!;
    expect(first.body).toEqual({
      status: "starting",
      task_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      status_url: `/v1/bootstrap/tasks/${first.body.task_id}`,
    });
    expect(new Set(all.map((r) => r.body.task_id)).size).toBe(1);
    const tasks = await h.database.sql<{ id: string; kind: string; origin: string; requested_by: string }[]>`
      select id, kind, origin, requested_by from tasks where host_id = ${u.hostId}`;
    expect(tasks).toEqual([{ id: first.body.task_id, kind: "host.ensure-running", origin: "entry", requested_by: u.id }]);
    expect((await h.queues.get("host-ops").getJob(first.body.task_id))?.name).toBe("host.ensure-running");
    const [host] = await h.database.sql<{ desired_state: string }[]>`select desired_state from hosts where id = ${u.hostId}`;
    expect(host!.desired_state).toBe("running");

    const status = await h.request("GET", first.body.status_url);
    expect(status.status, status.text).toBe(200);
    expect(status.body).toMatchObject({ task_id: first.body.task_id, stage_code: "auth_passed" });

    // What the worker does on success; then the same password gives the SSH credentials.
    await h.database.sql`update tasks set status = 'succeeded', progress_percent = 100 where id = ${first.body.task_id}`;
    await h.database.sql`update hosts set status = 'running' where id = ${u.hostId}`;
    const ready = await auth(u.shortId, u.password);
    expect(ready.status, ready.text).toBe(200);
    expect(ready.body).toMatchObject({ status: "ready", ssh_ticket: expect.stringMatching(/^ccpt_/) });
    expect(ready.text).not.toContain(u.sshPassword);
  });

  it("reuses an in-flight bootstrap start task, but not an admin one", async () => {
    const u = await userWithHost("stopped");
    const adminStart = await h.request("POST", `/v1/admin/hosts/${u.hostId}/start`, { token: admin });
    expect(adminStart.status).toBe(202);
    const s = await h.request("POST", "/v1/bootstrap/sessions", { body: { username: u.username, password: u.password }, ip: freshIp() });
    expect(s.status, s.text).toBe(200);
    const res = await auth(u.shortId, u.password);
    expect(res.status, res.text).toBe(202);
    expect(res.body.task_id).toBe(s.body.task_id);
    await h.database.sql`update tasks set status = 'failed', error_code = 'image_missing' where id = ${s.body.task_id}`;
    const next = await auth(u.shortId, u.password);
    expect(next.status).toBe(202);
    expect([s.body.task_id, adminStart.body.task_id]).not.toContain(next.body.task_id);
  });

  it("answers wrong password, unknown, malformed and deleting ids with identical 401 bodies (item 124)", async () => {
    const u = await userWithHost();
    const deleting = await userWithHost("deleting");
    const answers = [
      await auth(u.shortId, "wrong-password"),
      await auth("zzzzz8", "wrong-password"),
      await auth("ABC", "wrong-password"),
      await h.request("POST", "/v1/entry/abc%22%3Bid/auth", { body: { password: "x" }, ip: freshIp() }),
      await auth(deleting.shortId, deleting.password),
    ];
    for (const r of answers) expect(r.status, r.text).toBe(401);
    expect(answers[0]!.body).toEqual({
      error: expect.any(String),
      code: "invalid_credentials",
      error_code: "invalid_credentials",
      message: expect.stringMatching(/^[\x20-\x7e]+$/),
    });
    for (const r of answers) expect(r.body).toEqual(answers[0]!.body);
    const [ev] = await h.database.sql<{ n: number }[]>`select count(*)::int as n from events where type = 'entry.auth.failed'`;
    expect(ev!.n).toBeGreaterThanOrEqual(5);
  });

  it("refuses a disabled or expired owner with the correct password (item 125)", async () => {
    const u = await userWithHost();
    await h.request("PATCH", `/v1/admin/users/${u.id}`, { token: admin, body: { status: "disabled" } });
    const res = await auth(u.shortId, u.password);
    expect(res.status, res.text).toBe(403);
    expect(res.body).toMatchObject({ code: "account_disabled", error_code: "account_disabled" });
    expect(res.text).not.toContain("ssh_pass");
    const wrong = await auth(u.shortId, "wrong-password");
    expect(wrong.status, "a wrong password stays 401 for a disabled owner").toBe(401);

    const e = await userWithHost();
    await h.database.sql`update users set expires_at = now() - interval '1 second' where id = ${e.id}`;
    const res2 = await auth(e.shortId, e.password);
    expect(res2.status, res2.text).toBe(403);
    expect(res2.body.code).toBe("account_expired");
  });

  it("rate-limits a short id after 10 wrong passwords from an address, keyed by the owner's username there (item 126)", async () => {
    const u = await userWithHost();
    const ip = freshIp();
    for (let i = 0; i < 10; i++) {
      const r = await auth(u.shortId, `wrong-${i}`, ip);
      expect(r.status, r.text).toBe(401);
    }
    const blocked = await auth(u.shortId, u.password, ip);
    expect(blocked.status, blocked.text).toBe(429);
    expect(blocked.body).toMatchObject({ code: "rate_limited", error_code: "rate_limited", retry_after: expect.any(Number) });
    expect(Number(blocked.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    // Same (username, address) counter as login; the owner elsewhere still gets in (issue 10 §3).
    expect((await h.login(u.username, u.password, ip)).status).toBe(429);
    expect((await h.login(u.username, u.password, freshIp())).status).toBe(200);
    expect((await auth(u.shortId, u.password, freshIp())).status).toBe(200);
  });

  it("counts unknown ids against the IP only, and blocks the IP at its limit", async () => {
    const h3 = await h.withConfig({ AUTH_FAIL_MAX_PER_IP: "3" });
    const ip = freshIp();
    for (let i = 0; i < 3; i++) {
      const r = await h3.request("POST", "/v1/entry/zzzzz7/auth", { body: { password: "x" }, ip });
      expect(r.status, r.text).toBe(401);
    }
    const blocked = await h3.request("POST", "/v1/entry/zzzzz7/auth", { body: { password: "x" }, ip });
    expect(blocked.status, blocked.text).toBe(429);
    const u = await userWithHost();
    expect((await h3.request("POST", `/v1/entry/${u.shortId}/auth`, { body: { password: u.password }, ip })).status).toBe(429);
  });

  it("validates the body", async () => {
    const u = await userWithHost();
    const res = await h.request("POST", `/v1/entry/${u.shortId}/auth`, { body: { password: "" }, ip: freshIp() });
    expect(res.status, res.text).toBe(400);
    expect(res.body).toMatchObject({ code: "invalid_request", error_code: "invalid_request" });
    const extra = await h.request("POST", `/v1/entry/${u.shortId}/auth`, { body: { password: "x", username: "y" }, ip: freshIp() });
    expect(extra.status).toBe(400);
  });
});

describe("ENTRY_LISTEN_ADDR listener (item 127)", () => {
  let server: ServerType;
  let url: string;
  beforeAll(async () => {
    const app = createEntryApp(h.deps);
    await new Promise<void>((resolve) => {
      server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => {
        url = `http://127.0.0.1:${info.port}`;
        resolve();
      });
    });
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it("serves GET /entry/{shortId} and nothing else", async () => {
    const u = await userWithHost();
    const ok = await fetch(`${url}/entry/${u.shortId}`, { headers: { host: "evil.example.net" } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("content-type")).toBe("text/x-shellscript; charset=utf-8");
    const text = await ok.text();
    expect(text).toContain(`SHORT_ID='${u.shortId}'`);
    expect(text).toContain(`BASE_URL='${BASE}'`);

    const unknown = await fetch(`${url}/entry/zzzzz6`);
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { code: string }).code).toBe("not_found");

    const cases: [string, string, RequestInit?][] = [
      ["GET", "/v1/admin/users", { headers: { authorization: `Bearer ${admin}` } }],
      ["GET", "/v1/bootstrap/script"],
      ["POST", `/v1/entry/${u.shortId}/auth`, { body: JSON.stringify({ password: u.password }) }],
      ["GET", "/healthz"],
      ["GET", "/openapi.json"],
      ["GET", "/"],
    ];
    for (const [method, path, init] of cases) {
      const res = await fetch(`${url}${path}`, { method, ...init });
      const body = await res.text();
      expect(res.status, `${method} ${path}: ${body}`).toBe(404);
      expect(JSON.parse(body).code).toBe("not_found");
      expect(res.headers.get("content-type")).toBe("application/json; charset=utf-8");
    }
  });
});

describe("secrets", () => {
  it("no login password or host SSH password appears in a log line", () => {
    expect(findSecrets(h.logs, secrets)).toEqual([]);
  });
});
