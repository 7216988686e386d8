import { execFileSync } from "node:child_process";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { secretAt } from "../../shared/crypto/secrets.js";
import { type ApiHarness, createApiHarness, findSecrets, type TestUser } from "../../shared/test/api-harness.js";
import { insertTaskRow } from "../../shared/test/rows.js";

/** docs/api.md#bootstrap and checklist items 110–117 at the HTTP level. */
let h: ApiHarness;
let admin: string;
let dir: string;
const BASE = "http://cloud.example.test:8080";
const secrets: string[] = [];

beforeAll(async () => {
  h = await createApiHarness({ PUBLIC_BASE_URL: BASE, SSH_PUBLIC_PORT: "2222" });
  admin = await h.adminToken();
  dir = mkdtempSync(join(tmpdir(), "ccp-bootstrap-"));
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await h?.close();
});

let ipSeq = 1;
/** Each test uses its own client address, so the per-IP failure counter of one never blocks another. */
const freshIp = () => `198.18.${Math.floor(ipSeq / 250)}.${(ipSeq++ % 250) + 1}`;

/** A user with a host row in the given status (the worker is not needed for the API contract). */
async function userWithHost(status = "stopped"): Promise<TestUser & { hostId: string; shortId: string }> {
  const u = await h.createUser();
  secrets.push(u.password);
  const shortId = randomBytes(6).toString("hex").slice(0, 6);
  const id = randomUUID();
  const [row] = await h.database.sql<{ id: string }[]>`
    insert into hosts (id, user_id, short_id, status, desired_state, ssh_password_enc)
    values (${id}, ${u.id}, ${shortId}, ${status}, 'stopped', ${h.deps.secrets.encrypt("host-ssh-password-01", secretAt.host(id, "ssh_password_enc"))})
    returning id`;
  return { ...u, hostId: row!.id, shortId };
}

const session = (username: string, password: string, ip = freshIp()) =>
  h.request("POST", "/v1/bootstrap/sessions", { body: { username, password }, ip });

async function setTask(id: string, patch: { status: string; steps?: unknown[]; progress?: number; code?: string | null; message?: string | null }) {
  await h.database.sql`
    update tasks set status = ${patch.status}, steps = ${JSON.stringify(patch.steps ?? [])}::jsonb,
      progress_percent = ${patch.progress ?? 0}, error_code = ${patch.code ?? null}, error_message = ${patch.message ?? null},
      -- As the worker does: a terminal task has finished_at (the handoff window starts there).
      finished_at = case when ${patch.status} in ('succeeded', 'failed', 'canceled') then now() else null end
    where id = ${id}`;
}

const step = (name: string, status: string) => ({ name, status, started_at: null, duration_ms: null });

describe("GET /v1/bootstrap/script", () => {
  it("serves a bash script embedding PUBLIC_BASE_URL as a single-quoted word, valid for bash -n (item 110)", async () => {
    const res = await h.request("GET", "/v1/bootstrap/script");
    expect(res.status, res.text).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/x-shellscript; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.text.startsWith("#!/usr/bin/env bash\n")).toBe(true);
    expect(res.text).toContain(`BASE_URL='${BASE}'\n`);
    expect(res.text).toContain("set -euo pipefail");
    expect(res.text).not.toMatch(/__CCP_[A-Z_]+__/);
    const file = join(dir, "bootstrap.sh");
    writeFileSync(file, res.text);
    expect(() => execFileSync("bash", ["-n", file], { stdio: "pipe" })).not.toThrow();
  });

  it("ignores a forged Host header (item 176)", async () => {
    const res = await h.request("GET", "/v1/bootstrap/script", {
      headers: { host: "evil.example.net", "x-forwarded-host": "evil.example.net" },
    });
    expect(res.status).toBe(200);
    expect(res.text).toContain(`BASE_URL='${BASE}'`);
    expect(res.text).not.toContain("evil.example.net");
  });

  it("never puts a secret on an argv: bodies go to curl on stdin, the ticket through askpass", async () => {
    const text = (await h.request("GET", "/v1/bootstrap/script")).text;
    expect(text).toContain("--data-binary @-");
    expect(text).toContain("SSH_ASKPASS_REQUIRE=force");
    expect(text).toContain("StrictHostKeyChecking=yes");
    expect(text).not.toMatch(/curl[^\n]*\$password/);
    expect(text).not.toMatch(/ssh[^\n]*\$ticket/);
  });
});

describe("POST /v1/bootstrap/sessions", () => {
  it("answers unknown user and wrong password with identical 401 auth_invalid bodies (item 111)", async () => {
    const u = await userWithHost();
    const wrong = await session(u.username, "wrong-password");
    const unknown = await session("nobody-here", "wrong-password");
    expect(wrong.status, wrong.text).toBe(401);
    expect(unknown.status, unknown.text).toBe(401);
    expect(wrong.body).toEqual({
      error: expect.any(String),
      code: "auth_invalid",
      error_code: "auth_invalid",
      message: expect.stringMatching(/^[\x20-\x7e]+$/),
    });
    expect(unknown.body).toEqual(wrong.body);
    const [ev] = await h.database.sql<{ n: number }[]>`
      select count(*)::int as n from events where type = 'bootstrap.session.failed' and actor_id is null`;
    expect(ev!.n).toBeGreaterThanOrEqual(2);
  });

  it("refuses disabled, expired and host-less accounts after the password (item 112)", async () => {
    const disabled = await userWithHost();
    const d = await h.request("PATCH", `/v1/admin/users/${disabled.id}`, { token: admin, body: { status: "disabled" } });
    expect(d.status, d.text).toBe(200);
    const r1 = await session(disabled.username, disabled.password);
    expect(r1.status, r1.text).toBe(403);
    expect(r1.body).toMatchObject({ code: "account_disabled", error_code: "account_disabled" });

    const expired = await userWithHost();
    await h.database.sql`update users set expires_at = now() - interval '1 minute' where id = ${expired.id}`;
    const r2 = await session(expired.username, expired.password);
    expect(r2.status, r2.text).toBe(403);
    expect(r2.body).toMatchObject({ code: "account_expired", error_code: "account_expired" });

    const hostless = await h.createUser();
    const r3 = await session(hostless.username, hostless.password);
    expect(r3.status, r3.text).toBe(404);
    expect(r3.body).toMatchObject({ code: "host_not_found", error_code: "host_not_found" });

    const deleting = await userWithHost("deleting");
    const r4 = await session(deleting.username, deleting.password);
    expect(r4.status, r4.text).toBe(404);
    expect(r4.body.code).toBe("host_not_found");
    const tasks = await h.database.sql`select id from tasks where host_id = ${deleting.hostId}`;
    expect(tasks).toHaveLength(0);
  });

  it("creates a host.ensure-running task of origin bootstrap and enqueues it (item 113)", async () => {
    const u = await userWithHost("stopped");
    const res = await session(u.username.toUpperCase(), u.password);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({
      task_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      status_url: `/v1/bootstrap/tasks/${res.body.task_id}`,
      stage_code: "auth_passed",
      stage_text: "Authenticated; waiting for your host",
    });
    const [task] = await h.database.sql<{ kind: string; origin: string; requested_by: string; host_id: string; status: string }[]>`
      select kind, origin, requested_by, host_id, status from tasks where id = ${res.body.task_id}`;
    expect(task).toEqual({ kind: "host.ensure-running", origin: "bootstrap", requested_by: u.id, host_id: u.hostId, status: "pending" });
    const [host] = await h.database.sql<{ desired_state: string }[]>`select desired_state from hosts where id = ${u.hostId}`;
    expect(host!.desired_state).toBe("running");
    const job = await h.queues.get("host-ops").getJob(res.body.task_id);
    expect(job?.name).toBe("host.ensure-running");
    const [ev] = await h.database.sql<{ actor_id: string; metadata: { ip: string } }[]>`
      select actor_id, metadata from events where type = 'bootstrap.session.created' and task_id = ${res.body.task_id}`;
    expect(ev?.actor_id).toBe(u.id);
    expect(ev?.metadata.ip).toMatch(/^198\.18\./);

    // Each session gets its own task.
    const again = await session(u.username, u.password);
    expect(again.status).toBe(200);
    expect(again.body.task_id).not.toBe(res.body.task_id);
  });

  it("validates the body with 400 and carries error_code and message", async () => {
    const res = await h.request("POST", "/v1/bootstrap/sessions", { body: { username: "x" } });
    expect(res.status, res.text).toBe(400);
    expect(res.body).toMatchObject({ code: "invalid_request", error_code: "invalid_request" });
    expect(res.body.details.map((d: { field: string }) => d.field)).toEqual(["password"]);
    const extra = await h.request("POST", "/v1/bootstrap/sessions", { body: { username: "x", password: "y", role: "admin" } });
    expect(extra.status).toBe(400);
    const raw = await h.request("POST", "/v1/bootstrap/sessions", { rawBody: "not json" });
    expect(raw.status).toBe(400);
  });

  it("rate-limits after 10 failures for a username from an address, even the correct password, counting login failures too (docs/api.md#limits)", async () => {
    const u = await userWithHost();
    const ip = freshIp();
    for (let i = 0; i < 5; i++) expect((await session(u.username, `wrong-${i}`, ip)).status).toBe(401);
    for (let i = 0; i < 5; i++) expect((await h.login(u.username, `wrong-login-${i}`, ip)).status).toBe(401);
    const res = await session(u.username, u.password, ip);
    expect(res.status, res.text).toBe(429);
    expect(res.body).toMatchObject({ code: "rate_limited", error_code: "rate_limited", retry_after: expect.any(Number) });
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    // The owner from another address is not locked out (issue 10 §3).
    expect((await session(u.username, u.password, freshIp())).status).toBe(200);
  });
});

describe("GET /v1/bootstrap/tasks/{taskID}", () => {
  it("reports the stages of docs/api.md#bootstrap in order with a non-decreasing percentage (item 114)", async () => {
    const u = await userWithHost();
    const { task_id: id, status_url } = (await session(u.username, u.password)).body;
    const seen: { stage_code: string; progress_percent: number; task_status: string }[] = [];
    const look = async () => {
      const res = await h.request("GET", status_url);
      expect(res.status, res.text).toBe(200);
      expect(res.body.task_id).toBe(id);
      seen.push(res.body);
      return res.body;
    };
    const steps = (...s: [string, string][]) => s.map(([n, st]) => step(n, st));
    await look();
    await setTask(id, { status: "running", steps: steps(["check_images", "running"], ["start_gateway", "pending"]) });
    await look();
    await setTask(id, { status: "running", steps: steps(["check_images", "succeeded"], ["start_gateway", "succeeded"], ["start_host", "running"]), progress: 33 });
    await look();
    await setTask(id, {
      status: "running",
      steps: steps(["check_images", "succeeded"], ["start_gateway", "succeeded"], ["start_host", "succeeded"], ["verify_egress", "skipped"], ["wait_ssh", "running"]),
      progress: 66,
    });
    await look();
    await setTask(id, {
      status: "running",
      steps: steps(["check_images", "succeeded"], ["start_gateway", "succeeded"], ["start_host", "succeeded"], ["verify_egress", "succeeded"], ["wait_ssh", "succeeded"], ["sync_keys", "running"]),
      progress: 83,
    });
    await look();
    await setTask(id, { status: "succeeded", progress: 100 });
    const last = await look();
    expect(seen.map((s) => s.stage_code)).toEqual(["auth_passed", "host_starting", "host_starting", "network_ready", "ssh_ready", "ssh_ready"]);
    expect(seen.map((s) => s.task_status)).toEqual(["pending", "running", "running", "running", "running", "succeeded"]);
    const pct = seen.map((s) => s.progress_percent);
    expect(pct, JSON.stringify(pct)).toEqual([...pct].sort((a, b) => a - b));
    expect(last).toEqual({ task_id: id, task_status: "succeeded", stage_code: "ssh_ready", stage_text: "SSH ready", progress_percent: 100 });
    expect(seen[3]).toMatchObject({ stage_text: "Network ready (egress verified)" });
    expect(seen[1]).toMatchObject({ stage_text: "Starting your host" });
  });

  it.each([
    ["ssh_not_ready", "ssh_not_ready"],
    ["egress_binding_missing", "egress_binding_missing"],
    ["stale_timeout", "ssh_not_ready"],
    ["image_missing", "start_failed"],
    ["egress_ip_mismatch", "start_failed"],
    ["canceled", "start_failed"],
  ])("maps a failed task's %s to error_code %s", async (taskCode, mapped) => {
    const u = await userWithHost();
    const { task_id: id } = (await session(u.username, u.password)).body;
    await setTask(id, { status: taskCode === "canceled" ? "canceled" : "failed", code: taskCode, message: `it failed: ${taskCode}` });
    const res = await h.request("GET", `/v1/bootstrap/tasks/${id}`);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({
      stage_code: "failed",
      stage_text: "Host failed to start",
      error_code: mapped,
      task_error_code: taskCode,
      error_message: `it failed: ${taskCode}`,
    });
    const handoff = await h.request("GET", `/v1/bootstrap/tasks/${id}/handoff`);
    expect(handoff.status, handoff.text).toBe(503);
    expect(handoff.body).toMatchObject({ code: mapped, error_code: mapped, task_error_code: taskCode });
    expect(handoff.headers.get("retry-after")).toBeNull();
  });

  it("sanitises error_message: printable ASCII, no quote or backslash, at most 300 characters", async () => {
    const u = await userWithHost();
    const { task_id: id } = (await session(u.username, u.password)).body;
    await setTask(id, { status: "failed", code: "container_start_failed", message: `bad "name" \\ here\né ${"x".repeat(400)}` });
    const res = await h.request("GET", `/v1/bootstrap/tasks/${id}`);
    const msg: string = res.body.error_message;
    expect(msg).toMatch(/^[\x20-\x7e]{1,300}$/);
    expect(msg).not.toMatch(/["\\]/);
    expect(msg.startsWith("bad 'name' ' here")).toBe(true);
  });

  it("shows only bootstrap and entry tasks: admin tasks, unknown ids and non-UUIDs are 404 task_not_found (item 117)", async () => {
    const u = await userWithHost();
    const start = await h.request("POST", `/v1/admin/hosts/${u.hostId}/start`, { token: admin });
    expect(start.status, start.text).toBe(202);
    const adminTask = start.body.task_id;
    // Even an admin-origin task of the same kind that succeeded stays invisible.
    const ensure = await insertTaskRow(h.database.sql, { kind: "host.ensure-running", status: "succeeded", hostId: u.hostId, requestedBy: u.id });
    for (const id of [adminTask, ensure, "00000000-0000-4000-8000-000000000000", "not-a-uuid", "1"]) {
      for (const path of [`/v1/bootstrap/tasks/${id}`, `/v1/bootstrap/tasks/${id}/handoff`]) {
        const res = await h.request("GET", path);
        expect(res.status, `${path}: ${res.text}`).toBe(404);
        expect(res.body).toMatchObject({ code: "task_not_found", error_code: "task_not_found" });
      }
    }
  });
});

describe("GET /v1/bootstrap/tasks/{taskID}/handoff", () => {
  it("503 ssh_not_ready with Retry-After: 2 before success, then one ticket, then 410 (item 115)", async () => {
    const u = await userWithHost();
    const { task_id: id } = (await session(u.username, u.password)).body;
    const early = await h.request("GET", `/v1/bootstrap/tasks/${id}/handoff`);
    expect(early.status, early.text).toBe(503);
    expect(early.body).toMatchObject({ code: "ssh_not_ready", error_code: "ssh_not_ready", message: expect.any(String) });
    expect(early.headers.get("retry-after")).toBe("2");
    await setTask(id, { status: "running", steps: [step("wait_ssh", "succeeded"), step("sync_keys", "running")] });
    expect((await h.request("GET", `/v1/bootstrap/tasks/${id}/handoff`)).status).toBe(503);

    await setTask(id, { status: "succeeded", progress: 100 });
    const before = Date.now();
    const res = await h.request("GET", `/v1/bootstrap/tasks/${id}/handoff`);
    expect(res.status, res.text).toBe(200);
    const [key] = await h.database.sql<{ public_key: string }[]>`select public_key from system_keys where name = 'ssh_proxy_host_key'`;
    expect(key, "the API creates the proxy host key when the sshd has not").toBeDefined();
    const [alg, blob] = key!.public_key.split(" ");
    expect(res.body).toEqual({
      ready: true,
      host: "cloud.example.test",
      port: 2222,
      user: u.shortId,
      password: expect.stringMatching(/^ccpt_[A-Za-z0-9]{32}$/),
      host_key: key!.public_key,
      known_hosts_line: `[cloud.example.test]:2222 ${alg} ${blob}`,
    });
    expect(alg).toBe("ssh-ed25519");
    expect(key!.public_key).toMatch(/ cloud-cli-proxy$/);
    const ticket: string = res.body.password;
    secrets.push(ticket);

    // Only the SHA-256 is stored, with the owner, host and task, unused and valid for 120 s.
    const rows = await h.database.sql<{ ticket_hash: string; task_id: string; host_id: string; user_id: string; used_at: Date | null; expires_at: Date }[]>`
      select ticket_hash, task_id, host_id, user_id, used_at, expires_at from ssh_tickets where task_id = ${id}`;
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      ticket_hash: createHash("sha256").update(ticket).digest("hex"),
      task_id: id,
      host_id: u.hostId,
      user_id: u.id,
      used_at: null,
    });
    const ttl = new Date(rows[0]!.expires_at).getTime() - before;
    expect(ttl).toBeGreaterThan(115_000);
    expect(ttl).toBeLessThan(125_000);
    const dump = await h.database.sql<{ t: string }[]>`
      select (select coalesce(string_agg(t::text, ''), '') from ssh_tickets t) ||
             (select coalesce(string_agg(e::text, ''), '') from events e) ||
             (select coalesce(string_agg(k::text, ''), '') from tasks k) as t`;
    expect(dump[0]!.t).not.toContain(ticket);
    const [issued] = await h.database.sql<{ metadata: { task_id: string; expires_at: string } }[]>`
      select metadata from events where type = 'bootstrap.handoff.issued' and task_id = ${id}`;
    expect(issued?.metadata).toEqual({ task_id: id, expires_at: new Date(rows[0]!.expires_at).toISOString() });

    const second = await h.request("GET", `/v1/bootstrap/tasks/${id}/handoff`);
    expect(second.status, second.text).toBe(410);
    expect(second.body).toMatchObject({ code: "handoff_consumed", error_code: "handoff_consumed" });
    expect(await h.database.sql`select 1 from ssh_tickets where task_id = ${id}`).toHaveLength(1);
  });

  it("mints exactly one ticket under concurrent calls", async () => {
    const u = await userWithHost();
    const { task_id: id } = (await session(u.username, u.password)).body;
    await setTask(id, { status: "succeeded", progress: 100 });
    const all = await Promise.all(Array.from({ length: 6 }, () => h.request("GET", `/v1/bootstrap/tasks/${id}/handoff`)));
    const statuses = all.map((r) => r.status).sort();
    expect(statuses, all.map((r) => r.text).join("\n")).toEqual([200, 410, 410, 410, 410, 410]);
    for (const r of all) if (r.status === 200) secrets.push(r.body.password);
    expect(await h.database.sql`select 1 from ssh_tickets where task_id = ${id}`).toHaveLength(1);
  });

  it("does not hand off an entry task, and uses the bare host name when the port is 22", async () => {
    const u = await userWithHost();
    const entry = await h.request("POST", `/v1/entry/${u.shortId}/auth`, { body: { password: u.password }, ip: freshIp() });
    expect(entry.status, entry.text).toBe(202);
    await setTask(entry.body.task_id, { status: "succeeded", progress: 100 });
    expect((await h.request("GET", entry.body.status_url)).body.stage_code).toBe("ssh_ready");
    const h22 = await h.withConfig({ SSH_PUBLIC_HOST: "ssh.example.test", SSH_PUBLIC_PORT: "22" });
    const refused = await h22.request("GET", `/v1/bootstrap/tasks/${entry.body.task_id}/handoff`);
    expect(refused.status, refused.text).toBe(404);
    expect(refused.body.code).toBe("task_not_found");

    const { task_id: id } = (await h22.request("POST", "/v1/bootstrap/sessions", { body: { username: u.username, password: u.password }, ip: freshIp() })).body;
    await setTask(id, { status: "succeeded", progress: 100 });
    const res = await h22.request("GET", `/v1/bootstrap/tasks/${id}/handoff`);
    expect(res.status, res.text).toBe(200);
    secrets.push(res.body.password);
    expect(res.body).toMatchObject({ host: "ssh.example.test", port: 22 });
    expect(res.body.known_hosts_line).toMatch(/^ssh\.example\.test ssh-ed25519 [A-Za-z0-9+/=]+$/);
  });

  it("refuses a handoff asked for after the window since the task ended (410 handoff_expired), without minting (issue 10 §5)", async () => {
    const u = await userWithHost();
    const { task_id: id } = (await session(u.username, u.password)).body;
    await setTask(id, { status: "succeeded", progress: 100 });
    // The attack: a task id found later (scrollback, a shared log) redeemed for a fresh ticket.
    // The task's end is moved back instead of waiting: HANDOFF_WINDOW_SECONDS is 300 by default.
    await h.database.sql`update tasks set finished_at = now() - interval '301 seconds' where id = ${id}`;
    const late = await h.request("GET", `/v1/bootstrap/tasks/${id}/handoff`);
    expect(late.status, late.text).toBe(410);
    expect(late.body).toMatchObject({ code: "handoff_expired", error_code: "handoff_expired" });
    expect(await h.database.sql`select 1 from ssh_tickets where task_id = ${id}`).toHaveLength(0);
    const [task] = await h.database.sql<{ handoff_issued_at: Date | null }[]>`select handoff_issued_at from tasks where id = ${id}`;
    expect(task!.handoff_issued_at).toBeNull();

    // Inside the window it works; the window is configurable.
    await h.database.sql`update tasks set finished_at = now() - interval '60 seconds' where id = ${id}`;
    const short = await h.withConfig({ HANDOFF_WINDOW_SECONDS: "30" });
    expect((await short.request("GET", `/v1/bootstrap/tasks/${id}/handoff`)).body.code).toBe("handoff_expired");
    const ok = await h.request("GET", `/v1/bootstrap/tasks/${id}/handoff`);
    expect(ok.status, ok.text).toBe(200);
    secrets.push(ok.body.password);
  });

  it("refuses the ticket when the account was disabled after the session, without using up the handoff", async () => {
    const u = await userWithHost();
    const { task_id: id } = (await session(u.username, u.password)).body;
    await setTask(id, { status: "succeeded", progress: 100 });
    await h.database.sql`update users set status = 'disabled' where id = ${u.id}`;
    const res = await h.request("GET", `/v1/bootstrap/tasks/${id}/handoff`);
    expect(res.status, res.text).toBe(403);
    expect(res.body.code).toBe("account_disabled");
    expect(await h.database.sql`select 1 from ssh_tickets where task_id = ${id}`).toHaveLength(0);
  });
});

describe("secrets", () => {
  it("no password or ticket appears in a log line, and access logs redact the task id", async () => {
    expect(secrets.length).toBeGreaterThan(3);
    expect(findSecrets(h.logs, secrets)).toEqual([]);
    const lines = h.logs.filter((l) => l.includes('"/v1/bootstrap/tasks/'));
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(l).toMatch(/"path":"\/v1\/bootstrap\/tasks\/\[redacted\]/);
  });
});
