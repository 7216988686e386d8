import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { secretAt } from "../../shared/crypto/secrets.js";
import { SSH_PROXY_HOST_KEY, ensureSystemKeyPair } from "../../shared/services/system-keys/ensure.js";
import { type ApiHarness, type TestUser, createApiHarness } from "../../shared/test/api-harness.js";
import {
  docker,
  instanceObjects,
  removeInstanceObjects,
  startTestWorker,
  waitForTask,
  type WorkerHarness,
} from "../../shared/test/worker-harness.js";
import { runReconcile } from "../../worker/schedulers/reconcile.js";

/**
 * The host API against a real worker and engine (docs/api.md#hosts, docs/architecture.md#host-flows, docs/architecture.md#tasks cancel; checklist
 *  without egress/VNC/SSH-proxy). Two hosts at most run at
 * once: A (owner `ua`, the portal user) and B (owner `ub`).
 */
let h: ApiHarness;
let w: WorkerHarness;
let admin: string;
let adminId: string;

const TS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const PUBLIC = "http://cloud.example.test:8080";
// The idle policy and its state (docs/idle.md) are admin-only.
const IDLE_KEYS = ["always_on", "idle_cpu_percent", "idle_stop_minutes", "idle_stopped_at", "last_active_at"];
const ADMIN_HOST_KEYS = [
  "binding_id", "cpu_limit", "created_at", "desired_state", "disk_limit_mb", "egress", "engine_id", "id", "image", "image_outdated", "memory_limit_mb", "pids_limit",
  "session_recording", "short_id", "status", "timezone", "updated_at", "user_id", "username", ...IDLE_KEYS,
].sort();
const USER_HOST_KEYS = ADMIN_HOST_KEYS.filter((k) => !["binding_id", "desired_state", "engine_id", "image", "session_recording", ...IDLE_KEYS].includes(k));

beforeAll(async () => {
  h = await createApiHarness();
  w = await startTestWorker(h);
  admin = await h.adminToken();
  const [row] = await h.database.sql<{ id: string }[]>`select id from users where role = 'admin'`;
  adminId = row!.id;
});
afterAll(async () => {
  await w?.stop();
  if (h) removeInstanceObjects(h.prefix);
  await h?.close();
});

const sql = () => h.database.sql;

async function hostRow(id: string) {
  const [row] = await sql()<{ status: string; desired_state: string; ssh_password_enc: string }[]>`
    select status, desired_state, ssh_password_enc from hosts where id = ${id}`;
  return row;
}

/** Bounded polling: resolves with the first truthy value, else fails naming what it waited for. */
async function until<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 60_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** `true`/`false` for a container's running state, `null` when it does not exist. */
function running(name: string): boolean | null {
  try {
    return docker(["inspect", "-f", "{{.State.Running}}", name]) === "true";
  } catch {
    return null;
  }
}

function objectsOf(hostId: string) {
  const label = `cloud-cli-proxy.host_id=${hostId}`;
  return {
    containers: docker(["ps", "-aq", "--filter", `label=${label}`]).split("\n").filter(Boolean),
    volumes: docker(["volume", "ls", "-q", "--filter", `label=${label}`]).split("\n").filter(Boolean),
  };
}

const post = (path: string, token: string, body?: unknown) => h.request("POST", path, { token, ...(body === undefined ? {} : { body }) });
const getHost = (id: string) => h.request("GET", `/v1/admin/hosts/${id}`, { token: admin });

async function hostEvents(hostId: string) {
  return sql()<{ type: string; level: string; actor_id: string | null; user_id: string | null; host_id: string | null; task_id: string | null; metadata: Record<string, unknown> }[]>`
    select type, level, actor_id, user_id, host_id, task_id, metadata from events where host_id = ${hostId} order by created_at, id`;
}

describe("create validation and refusals (no container is created)", () => {
  let u: TestUser;
  beforeAll(async () => {
    u = await h.createUser();
  });

  it("lists one detail per out-of-range field", async () => {
    const res = await post("/v1/admin/hosts", admin, {
      user_id: u.id, memory_limit_mb: 127, cpu_limit: 0.05, pids_limit: 63, timezone: "Mars/Base", disk_limit_mb: 255,
    });
    expect(res.status, res.text).toBe(400);
    expect(res.body.code).toBe("invalid_request");
    const fields = (res.body.details as { field: string }[]).map((d) => d.field).sort();
    expect(fields).toEqual(["cpu_limit", "disk_limit_mb", "memory_limit_mb", "pids_limit", "timezone"]);
  });

  it("rejects more than two decimals of CPU, the upper bounds, and a non-UUID user_id", async () => {
    const cpu = await post("/v1/admin/hosts", admin, { user_id: u.id, cpu_limit: 1.234 });
    expect(cpu.status, cpu.text).toBe(400);
    expect(cpu.body.details.map((d: { field: string }) => d.field)).toEqual(["cpu_limit"]);
    const high = await post("/v1/admin/hosts", admin, {
      user_id: u.id, memory_limit_mb: 262145, cpu_limit: 64.01, pids_limit: 131073, disk_limit_mb: 1048577,
    });
    expect(high.status).toBe(400);
    expect(high.body.details.map((d: { field: string }) => d.field).sort()).toEqual(["cpu_limit", "disk_limit_mb", "memory_limit_mb", "pids_limit"]);
    const frac = await post("/v1/admin/hosts", admin, { user_id: u.id, disk_limit_mb: 300.5 });
    expect(frac.status).toBe(400);
    expect(frac.body.details.map((d: { field: string }) => d.field)).toEqual(["disk_limit_mb"]);
    const bad = await post("/v1/admin/hosts", admin, { user_id: "not-a-uuid" });
    expect(bad.status).toBe(400);
    expect(bad.body.details.map((d: { field: string }) => d.field)).toEqual(["user_id"]);
    const missing = await post("/v1/admin/hosts", admin, {});
    expect(missing.status).toBe(400);
    expect(missing.body.details.map((d: { field: string }) => d.field)).toEqual(["user_id"]);
  });

  it("rejects an unknown field", async () => {
    const res = await post("/v1/admin/hosts", admin, { user_id: u.id, status: "running" });
    expect(res.status, res.text).toBe(400);
    expect(res.body.details).toEqual([{ field: "status", message: "unknown field" }]);
  });

  it("answers 404 user_not_found for an unknown user, and 409 for the admin account", async () => {
    const unknown = await post("/v1/admin/hosts", admin, { user_id: randomUUID() });
    expect(unknown.status, unknown.text).toBe(404);
    expect(unknown.body.code).toBe("user_not_found");
    const adm = await post("/v1/admin/hosts", admin, { user_id: adminId });
    expect(adm.status, adm.text).toBe(409);
    expect(adm.body.code).toBe("admin_protected");
  });

  it("answers 409 user_inactive for a disabled and for an expired user", async () => {
    const disabled = await h.createUser();
    expect((await h.request("PATCH", `/v1/admin/users/${disabled.id}`, { token: admin, body: { status: "disabled" } })).status).toBe(200);
    const r1 = await post("/v1/admin/hosts", admin, { user_id: disabled.id });
    expect(r1.status, r1.text).toBe(409);
    expect(r1.body.code).toBe("user_inactive");
    const expired = await h.createUser({ expires_at: new Date(Date.now() + 3_600_000).toISOString() });
    await sql()`update users set expires_at = now() - interval '1 second' where id = ${expired.id}`;
    const r2 = await post("/v1/admin/hosts", admin, { user_id: expired.id });
    expect(r2.status, r2.text).toBe(409);
    expect(r2.body.code).toBe("user_inactive");
  });

  it("created nothing for any refused request", async () => {
    const [row] = await sql()<{ n: number }[]>`select count(*)::int as n from hosts`;
    expect(row!.n).toBe(0);
    // Scheduler runs (system.*) may leave rows of their own; only host work matters here.
    const tasks = await sql()<{ kind: string }[]>`select kind from tasks`;
    expect(tasks.map((t) => t.kind).filter((k) => !k.startsWith("system."))).toEqual([]);
    expect(instanceObjects(h.prefix)).toEqual({ containers: [], volumes: [] });
  });
});

describe("hosts on the engine", () => {
  let ua: TestUser;
  let ub: TestUser;
  let hostA: string;
  let hostB: string;
  let createA: string;

  it("concurrent creates for one user: exactly one 202, the rest 409 user_has_host (never 500)", async () => {
    ua = await h.createUser();
    const results = await Promise.all(
      Array.from({ length: 4 }, () => post("/v1/admin/hosts", admin, { user_id: ua.id, timezone: "Asia/Tokyo", cpu_limit: 0.5 })),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses, results.map((r) => r.text).join("\n")).toEqual([202, 409, 409, 409]);
    for (const r of results.filter((x) => x.status === 409)) expect(r.body.code).toBe("user_has_host");
    const ok = results.find((r) => r.status === 202)!;
    expect(Object.keys(ok.body.host).sort()).toEqual(ADMIN_HOST_KEYS);
    expect(ok.body.host).toMatchObject({
      user_id: ua.id, username: ua.username, status: "pending", desired_state: "running",
      memory_limit_mb: 4096, cpu_limit: 0.5, pids_limit: 1024, disk_limit_mb: null, timezone: "Asia/Tokyo", egress: null, binding_id: null,
    });
    expect(ok.body.host.short_id).toMatch(/^[a-z0-9]{6}$/);
    hostA = ok.body.host.id;
    createA = ok.body.task_id;
    const task = await waitForTask(h, createA);
    expect(task.status, JSON.stringify(task)).toBe("succeeded");
    expect(task.requested_by).toBe(adminId);
    expect((await hostRow(hostA))!.status).toBe("running");
    expect(docker(["inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", `ccp-host-${hostA}`])).toContain("TZ=Asia/Tokyo");
    const { n } = (await sql()<{ n: number }[]>`select count(*)::int as n from hosts where user_id = ${ua.id}`)[0]!;
    expect(n).toBe(1);
  });

  it("a later second host for the same user → 409 user_has_host", async () => {
    const res = await post("/v1/admin/hosts", admin, { user_id: ua.id });
    expect(res.status, res.text).toBe(409);
    expect(res.body.code).toBe("user_has_host");
  });

  it("a second user's host; the list filters by status and user_id and pages newest first", async () => {
    ub = await h.createUser();
    const res = await post("/v1/admin/hosts", admin, { user_id: ub.id });
    expect(res.status, res.text).toBe(202);
    hostB = res.body.host.id;
    expect((await waitForTask(h, res.body.task_id)).status).toBe("succeeded");

    const list = async (qs: string) => {
      const r = await h.request("GET", `/v1/admin/hosts${qs}`, { token: admin });
      expect(r.status, r.text).toBe(200);
      return r.body;
    };
    const all = await list("");
    expect(all).toMatchObject({ total: 2, limit: 50, offset: 0 });
    expect(all.hosts.map((x: { id: string }) => x.id)).toEqual([hostB, hostA]);
    for (const x of all.hosts) expect(Object.keys(x).sort()).toEqual(ADMIN_HOST_KEYS);
    expect((await list("?status=running")).total).toBe(2);
    expect(await list("?status=stopped")).toMatchObject({ hosts: [], total: 0 });
    const byUser = await list(`?user_id=${ub.id}`);
    expect(byUser.total).toBe(1);
    expect(byUser.hosts.map((x: { id: string }) => x.id)).toEqual([hostB]);
    expect((await list(`?user_id=${randomUUID()}`)).total).toBe(0);
    const p1 = await list("?limit=1");
    expect(p1).toMatchObject({ total: 2, limit: 1, offset: 0 });
    expect(p1.hosts.map((x: { id: string }) => x.id)).toEqual([hostB]);
    const p2 = await list("?limit=1&offset=1");
    expect(p2.hosts.map((x: { id: string }) => x.id)).toEqual([hostA]);
    expect((await list("?offset=2")).hosts).toEqual([]);
    for (const qs of ["?status=foo", "?user_id=nope", "?limit=0"]) {
      const r = await h.request("GET", `/v1/admin/hosts${qs}`, { token: admin });
      expect(r.status, qs).toBe(400);
    }
  });

  it("GET detail: host, user, egress null, access built from configuration, last_task", async () => {
    const proxyKey = await ensureSystemKeyPair(h.database.db, h.deps.secrets, SSH_PROXY_HOST_KEY);
    const res = await getHost(hostA);
    expect(res.status, res.text).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(["access", "egress", "host", "last_task", "user"]);
    expect(Object.keys(res.body.host).sort()).toEqual(ADMIN_HOST_KEYS);
    expect(res.body.host).toMatchObject({ id: hostA, status: "running", desired_state: "running", image: "cloud-cli-proxy/host:latest" });
    expect(res.body.user).toEqual({ id: ua.id, username: ua.username });
    expect(res.body.egress).toBeNull();
    const sid = res.body.host.short_id;
    expect(res.body.access).toEqual({
      short_id: sid,
      entry_command: `curl -sSf ${PUBLIC}/entry/${sid} | bash`,
      bootstrap_command: `curl -sSf ${PUBLIC}/v1/bootstrap/script | bash`,
      ssh_command: `ssh ${sid}@cloud.example.test -p 2222`,
      ssh_host_key: proxyKey.publicKey,
      vnc_path: `/v1/admin/hosts/${hostA}/vnc/`,
    });
    expect(res.body.last_task).toEqual({
      id: createA, kind: "host.create", status: "succeeded", progress_percent: 100, progress_message: "done",
      error_code: null, error_message: null, created_at: expect.stringMatching(TS), finished_at: expect.stringMatching(TS),
    });
    // A forged Host header changes nothing (docs/architecture.md#processes).
    const forged = await h.request("GET", `/v1/admin/hosts/${hostA}`, { token: admin, headers: { host: "evil.example" } });
    expect(forged.body.access).toEqual(res.body.access);
  });

  it("SSH_PUBLIC_HOST and SSH_PUBLIC_PORT, when set, are what ssh_command advertises", async () => {
    const other = await h.withConfig({ SSH_PUBLIC_HOST: "ssh.example.test", SSH_PUBLIC_PORT: "2200" });
    const res = await other.request("GET", `/v1/admin/hosts/${hostA}`, { token: admin });
    expect(res.status, res.text).toBe(200);
    const sid = res.body.host.short_id;
    expect(res.body.access.ssh_command).toBe(`ssh ${sid}@ssh.example.test -p 2200`);
    expect(res.body.access.entry_command).toBe(`curl -sSf ${PUBLIC}/entry/${sid} | bash`);
  });

  it("not-a-uuid and unknown ids → 404 host_not_found on every host route", async () => {
    for (const id of ["not-a-uuid", randomUUID()]) {
      const routes: [string, string][] = [
        ["GET", `/v1/admin/hosts/${id}`],
        ["POST", `/v1/admin/hosts/${id}/start`],
        ["POST", `/v1/admin/hosts/${id}/stop`],
        ["POST", `/v1/admin/hosts/${id}/rebuild`],
        ["POST", `/v1/admin/hosts/${id}/rotate-ssh-password`],
        ["DELETE", `/v1/admin/hosts/${id}`],
      ];
      for (const [m, p] of routes) {
        const r = await h.request(m, p, { token: admin });
        expect(r.status, `${m} ${p}: ${r.text}`).toBe(404);
        expect(r.body.code).toBe("host_not_found");
      }
    }
  });

  it("DELETE with a keep_home other than true/false → 400 and nothing changes", async () => {
    const r = await h.request("DELETE", `/v1/admin/hosts/${hostB}?keep_home=yes`, { token: admin });
    expect(r.status, r.text).toBe(400);
    expect(r.body.details.map((d: { field: string }) => d.field)).toEqual(["query.keep_home"]);
    expect((await hostRow(hostB))!.status).toBe("running");
  });

  it("401 without a token, 403 with a user token on the admin host routes", async () => {
    const routes: [string, string][] = [
      ["GET", "/v1/admin/hosts"],
      ["POST", "/v1/admin/hosts"],
      ["GET", `/v1/admin/hosts/${hostA}`],
      ["POST", `/v1/admin/hosts/${hostA}/start`],
      ["POST", `/v1/admin/hosts/${hostA}/stop`],
      ["POST", `/v1/admin/hosts/${hostA}/rebuild`],
      ["POST", `/v1/admin/hosts/${hostA}/rotate-ssh-password`],
      ["DELETE", `/v1/admin/hosts/${hostA}`],
    ];
    for (const [m, p] of routes) {
      const anon = await h.request(m, p);
      expect(anon.status, `${m} ${p}`).toBe(401);
      expect(anon.body.code).toBe("unauthorized");
      expect(anon.headers.get("www-authenticate")).toMatch(/^Bearer/);
      const user = await h.request(m, p, { token: ua.token, ...(m === "POST" && p === "/v1/admin/hosts" ? { body: { user_id: ua.id } } : {}) });
      expect(user.status, `${m} ${p}: ${user.text}`).toBe(403);
      expect(user.body.code).toBe("forbidden");
    }
    expect((await h.request("GET", "/v1/user/hosts")).status).toBe(401);
    // Nothing moved: no task was created by the refused calls.
    const { n } = (await sql()<{ n: number }[]>`select count(*)::int as n from tasks where host_id = ${hostA}`)[0]!;
    expect(n).toBe(1);
    expect((await hostRow(hostA))!.status).toBe("running");
  });

  it("rotate-ssh-password: 200 with a new 20-character password, stored encrypted, never in an event or log", async () => {
    const before = (await hostRow(hostA))!.ssh_password_enc;
    const res = await post(`/v1/admin/hosts/${hostA}/rotate-ssh-password`, admin);
    expect(res.status, res.text).toBe(200);
    expect(Object.keys(res.body)).toEqual(["ssh_password"]);
    const pw: string = res.body.ssh_password;
    expect(pw).toMatch(/^[A-Za-z0-9]{20}$/);
    const after = (await hostRow(hostA))!.ssh_password_enc;
    expect(after).not.toBe(before);
    expect(after).not.toContain(pw);
    expect(after).toMatch(/^v1a:/);
    expect(h.deps.secrets.decrypt(after, secretAt.host(hostA, "ssh_password_enc"))).toBe(pw);
    const evs = (await hostEvents(hostA)).filter((e) => e.type === "host.ssh_password.rotated");
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({ actor_id: adminId, user_id: ua.id, host_id: hostA });
    const { dump } = (await sql()<{ dump: string }[]>`select coalesce(string_agg(e::text, ' '), '') as dump from events e`)[0]!;
    expect(dump).not.toContain(pw);
    const { tdump } = (await sql()<{ tdump: string }[]>`select coalesce(string_agg(t::text, ' '), '') as tdump from tasks t`)[0]!;
    expect(tdump).not.toContain(pw);
    expect([...h.logs, ...w.logs].some((l) => l.includes(pw))).toBe(false);
    // Only the one-time reveal carried it.
    expect(h.responses.filter((r) => r.includes(pw))).toHaveLength(1);
    // No task: the proxy reads the database.
    const { n } = (await sql()<{ n: number }[]>`select count(*)::int as n from tasks where host_id = ${hostA}`)[0]!;
    expect(n).toBe(1);
  });

  it("start, stop, start sent back to back: three tasks succeed one after another in creation order; the host ends running", async () => {
    const ids: string[] = [];
    for (const op of ["start", "stop", "start"]) {
      const r = await post(`/v1/admin/hosts/${hostA}/${op}`, admin);
      expect(r.status, r.text).toBe(202);
      expect(Object.keys(r.body)).toEqual(["task_id"]);
      ids.push(r.body.task_id);
    }
    const done = [];
    for (const id of ids) done.push(await waitForTask(h, id));
    expect(done.map((t) => t.status)).toEqual(["succeeded", "succeeded", "succeeded"]);
    expect(done.map((t) => t.kind)).toEqual(["host.start", "host.stop", "host.start"]);
    for (const t of done) expect(t.requested_by).toBe(adminId);
    for (let i = 1; i < done.length; i++) {
      expect(Date.parse(done[i].created_at)).toBeGreaterThanOrEqual(Date.parse(done[i - 1].created_at));
      // Each one started only once the previous had finished.
      expect(Date.parse(done[i].started_at), JSON.stringify(done)).toBeGreaterThanOrEqual(Date.parse(done[i - 1].finished_at));
    }
    // The first start found the host running: every step skipped; the second really started it.
    expect(done[0].steps.every((s: { status: string }) => s.status === "skipped")).toBe(true);
    expect(done[1].steps.map((s: { name: string; status: string }) => `${s.name}:${s.status}`)).toEqual([
      "stop_host:succeeded", "stop_gateway:succeeded",
    ]);
    expect(done[2].steps.find((s: { name: string }) => s.name === "start_host").status).toBe("succeeded");
    const host = await getHost(hostA);
    expect(host.body.host).toMatchObject({ status: "running", desired_state: "running" });
    expect(host.body.last_task).toMatchObject({ id: ids[2], kind: "host.start", status: "succeeded" });
    expect(running(`ccp-gw-${hostA}`)).toBe(true);
    expect(running(`ccp-host-${hostA}`)).toBe(true);
  });

  it("portal: the caller sees only their own host, in the user view", async () => {
    const list = await h.request("GET", "/v1/user/hosts", { token: ua.token });
    expect(list.status, list.text).toBe(200);
    expect(list.body).toMatchObject({ total: 1, limit: 50, offset: 0 });
    expect(list.body.hosts).toHaveLength(1);
    expect(list.body.hosts[0].id).toBe(hostA);
    expect(Object.keys(list.body.hosts[0]).sort()).toEqual(USER_HOST_KEYS);
    for (const k of ["desired_state", "image", "binding_id"]) expect(list.body.hosts[0]).not.toHaveProperty(k);

    const own = await h.request("GET", `/v1/user/hosts/${hostA}`, { token: ua.token });
    expect(own.status, own.text).toBe(200);
    expect(Object.keys(own.body).sort()).toEqual(["access", "egress", "host", "last_task", "user"]);
    expect(Object.keys(own.body.host).sort()).toEqual(USER_HOST_KEYS);
    expect(own.body.user).toEqual({ id: ua.id, username: ua.username });
    expect(own.body.egress).toBeNull();
    expect(own.body.access.vnc_path).toBe(`/v1/user/hosts/${hostA}/vnc/`);
    expect(own.body.access.ssh_command).toBe(`ssh ${own.body.host.short_id}@cloud.example.test -p 2222`);

    const ubList = await h.request("GET", "/v1/user/hosts", { token: ub.token });
    expect(ubList.body.hosts.map((x: { id: string }) => x.id)).toEqual([hostB]);
  });

  it("portal: another user's host id on GET or rebuild → 404 host_not_found, and nothing is enqueued", async () => {
    const tasksBefore = await sql()<{ id: string }[]>`select id from tasks where host_id = ${hostB}`;
    for (const [m, p] of [
      ["GET", `/v1/user/hosts/${hostB}`],
      ["POST", `/v1/user/hosts/${hostB}/rebuild`],
      ["GET", `/v1/user/hosts/not-a-uuid`],
      ["POST", `/v1/user/hosts/${randomUUID()}/rebuild`],
    ] as const) {
      const r = await h.request(m, p, { token: ua.token });
      expect(r.status, `${m} ${p}: ${r.text}`).toBe(404);
      expect(r.body.code).toBe("host_not_found");
    }
    expect(await sql()`select id from tasks where host_id = ${hostB}`).toHaveLength(tasksBefore.length);
    // The user cannot start or stop through the portal.
    expect((await h.request("POST", `/v1/user/hosts/${hostA}/start`, { token: ua.token })).status).toBe(404);
  });

  it("portal: own rebuild → 202, requested by the caller, and it succeeds", async () => {
    const bad = await post(`/v1/user/hosts/${hostA}/rebuild`, ua.token, { mode: "nope" });
    expect(bad.status).toBe(400);
    const r = await post(`/v1/user/hosts/${hostA}/rebuild`, ua.token);
    expect(r.status, r.text).toBe(202);
    const t = await waitForTask(h, r.body.task_id);
    expect(t).toMatchObject({ status: "succeeded", kind: "host.rebuild", requested_by: ua.id });
    expect((await hostRow(hostA))!.status).toBe("running");
  });

  it("cancel of a running host.rebuild → 202, then the task ends canceled and the host stopped with both containers stopped", async () => {
    const r = await post(`/v1/admin/hosts/${hostA}/rebuild`, admin);
    expect(r.status, r.text).toBe(202);
    const taskId: string = r.body.task_id;
    // Cancel once start_host has begun (its cancel check is behind it): the cancel is then seen at
    // the wait_ssh boundary (wait_ssh takes ~1 s here, start_host ~0.1 s), with both containers
    // present. Polled straight from the database every 10 ms.
    const seen = await until(
      "the rebuild to reach start_host",
      async () => {
        const [t] = await sql()<{ status: string; steps: { name: string; status: string }[] }[]>`
          select status, steps from tasks where id = ${taskId}`;
        if (t!.status !== "running" && t!.status !== "pending") return t;
        const s = (n: string) => t!.steps.find((x) => x.name === n)?.status;
        return s("start_host") === "running" || s("start_host") === "succeeded" ? t : undefined;
      },
      60_000,
      10,
    );
    expect(seen.status, JSON.stringify(seen)).toBe("running");
    const c = await post(`/v1/admin/tasks/${taskId}/cancel`, admin);
    expect(c.status, c.text).toBe(202);
    expect(c.body.task).toMatchObject({ id: taskId, status: "running", cancel_requested: true });
    const t = await waitForTask(h, taskId);
    expect(t.status, JSON.stringify(t)).toBe("canceled");
    expect(t.error_code).toBe("canceled");
    expect(t.steps.find((s: { name: string }) => s.name === "sync_keys").status).toBe("pending");
    // The containers are stopped right after the terminal update.
    await until("the host to be stopped", async () => (await hostRow(hostA))!.status === "stopped", 30_000);
    expect(await hostRow(hostA)).toMatchObject({ status: "stopped", desired_state: "stopped" });
    expect(running(`ccp-gw-${hostA}`)).toBe(false);
    expect(running(`ccp-host-${hostA}`)).toBe(false);
    const evs = await sql()<{ type: string; actor_id: string | null; user_id: string | null }[]>`
      select type, actor_id, user_id from events where task_id = ${taskId} order by created_at, id`;
    expect(evs.find((e) => e.type === "task.cancel.requested")).toMatchObject({ actor_id: adminId, user_id: ua.id });
    expect(evs.map((e) => e.type)).toContain("task.canceled");
    expect(evs.map((e) => e.type)).not.toContain("host.rebuilt");
    // A finished task cannot be canceled.
    const again = await post(`/v1/admin/tasks/${taskId}/cancel`, admin);
    expect(again.status).toBe(409);
    expect(again.body.code).toBe("task_not_cancelable");
  });

  it("admin start for a disabled or expired owner → 409 user_inactive; stop is always allowed", async () => {
    expect((await h.request("PATCH", `/v1/admin/users/${ub.id}`, { token: admin, body: { status: "disabled" } })).status).toBe(200);
    for (const op of ["start", "rebuild"]) {
      const r = await post(`/v1/admin/hosts/${hostB}/${op}`, admin);
      expect(r.status, r.text).toBe(409);
      expect(r.body.code).toBe("user_inactive");
    }
    const stop = await post(`/v1/admin/hosts/${hostB}/stop`, admin);
    expect(stop.status, stop.text).toBe(202);
    expect((await waitForTask(h, stop.body.task_id)).status).toBe("succeeded");
    expect(await hostRow(hostB)).toMatchObject({ status: "stopped", desired_state: "stopped" });

    // Re-enabled but expired: still inactive.
    expect((await h.request("PATCH", `/v1/admin/users/${ub.id}`, { token: admin, body: { status: "active" } })).status).toBe(200);
    await sql()`update users set expires_at = now() - interval '1 second' where id = ${ub.id}`;
    const start = await post(`/v1/admin/hosts/${hostB}/start`, admin);
    expect(start.status, start.text).toBe(409);
    expect(start.body.code).toBe("user_inactive");
    await sql()`update users set expires_at = null where id = ${ub.id}`;
  });

  it("a stopped host whose gateway was started by hand: the reconciler's host.stop really stops it", async () => {
    expect(await hostRow(hostB)).toMatchObject({ status: "stopped", desired_state: "stopped" });
    docker(["start", `ccp-gw-${hostB}`]);
    expect(running(`ccp-gw-${hostB}`)).toBe(true);
    const before = (await sql()<{ id: string }[]>`select id from tasks where host_id = ${hostB}`).map((r) => r.id);
    expect(await runReconcile(w.deps)).toMatchObject({ repairs: 1 });
    const created = (await sql()<{ id: string; kind: string; requested_by: string }[]>`
      select id, kind, requested_by from tasks where host_id = ${hostB}`).filter((t) => !before.includes(t.id));
    expect(created.map((t) => `${t.kind} ${t.requested_by}`)).toEqual(["host.stop system:reconcile"]);
    const t = await waitForTask(h, created[0]!.id);
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    expect(running(`ccp-gw-${hostB}`)).toBe(false);
    expect(running(`ccp-host-${hostB}`)).toBe(false);
    expect(await hostRow(hostB)).toMatchObject({ status: "stopped", desired_state: "stopped" });
    // Converged: a second pass finds nothing to repair.
    expect(await runReconcile(w.deps)).toMatchObject({ repairs: 0 });
  });

  it("a deleting host: start/stop/rebuild/rotate → 409 host_deleting, a second DELETE → 202 with the same task id, pending work canceled", async () => {
    const queue = h.queues.get("host-ops");
    // Paused so the host is still `deleting` (not gone) while we probe it.
    await queue.pause();
    let deleteTask: string;
    let pendingStart: string;
    try {
      const s = await post(`/v1/admin/hosts/${hostA}/start`, admin);
      expect(s.status).toBe(202);
      pendingStart = s.body.task_id;
      const del = await h.request("DELETE", `/v1/admin/hosts/${hostA}`, { token: admin });
      expect(del.status, del.text).toBe(202);
      expect(Object.keys(del.body)).toEqual(["task_id"]);
      deleteTask = del.body.task_id;
      const again = await h.request("DELETE", `/v1/admin/hosts/${hostA}`, { token: admin });
      expect(again.status, again.text).toBe(202);
      expect(again.body.task_id).toBe(deleteTask);
      for (const op of ["start", "stop", "rebuild", "rotate-ssh-password"]) {
        const r = await post(`/v1/admin/hosts/${hostA}/${op}`, admin);
        expect(r.status, `${op}: ${r.text}`).toBe(409);
        expect(r.body.code).toBe("host_deleting");
      }
      const portal = await post(`/v1/user/hosts/${hostA}/rebuild`, ua.token);
      expect(portal.status).toBe(409);
      expect(portal.body.code).toBe("host_deleting");
      expect((await getHost(hostA)).body.host).toMatchObject({ status: "deleting", desired_state: "deleted" });
      const [st] = await sql()<{ status: string; error_code: string }[]>`select status, error_code from tasks where id = ${pendingStart}`;
      expect(st).toEqual({ status: "canceled", error_code: "canceled" });
      const cancelDelete = await post(`/v1/admin/tasks/${deleteTask}/cancel`, admin);
      expect(cancelDelete.status, cancelDelete.text).toBe(409);
      expect(cancelDelete.body.code).toBe("task_not_cancelable");
    } finally {
      await queue.resume();
    }
    const t = await waitForTask(h, deleteTask!);
    expect(t).toMatchObject({ status: "succeeded", kind: "host.delete", requested_by: adminId });
    const gone = await getHost(hostA);
    expect(gone.status).toBe(404);
    expect(gone.body.code).toBe("host_not_found");
    expect(objectsOf(hostA)).toEqual({ containers: [], volumes: [] });
    // Host B is untouched.
    expect(objectsOf(hostB).containers).toHaveLength(2);
    expect(objectsOf(hostB).volumes).toHaveLength(1);
  });

  it("a pending host.create canceled → 200, the host stopped with no containers; a later start creates them", async () => {
    const uc = await h.createUser();
    const queue = h.queues.get("host-ops");
    await queue.pause();
    let hostC: string;
    let createC: string;
    try {
      const res = await post("/v1/admin/hosts", admin, { user_id: uc.id });
      expect(res.status, res.text).toBe(202);
      hostC = res.body.host.id;
      createC = res.body.task_id;
      const c = await post(`/v1/admin/tasks/${createC}/cancel`, admin);
      expect(c.status, c.text).toBe(200);
      expect(c.body.task).toMatchObject({ status: "canceled", error_code: "canceled" });
    } finally {
      await queue.resume();
    }
    expect(await hostRow(hostC!)).toMatchObject({ status: "stopped", desired_state: "stopped" });
    expect(objectsOf(hostC!)).toEqual({ containers: [], volumes: [] });
    const start = await post(`/v1/admin/hosts/${hostC!}/start`, admin);
    expect(start.status, start.text).toBe(202);
    const t = await waitForTask(h, start.body.task_id);
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    // The canceled create never ran, and nothing it would have made exists except what start made.
    expect((await waitForTask(h, createC!)).attempt).toBe(0);
    expect(await hostRow(hostC!)).toMatchObject({ status: "running", desired_state: "running" });
    expect(running(`ccp-gw-${hostC!}`)).toBe(true);
    expect(running(`ccp-host-${hostC!}`)).toBe(true);
    expect(objectsOf(hostC!).volumes).toEqual([`ccp-home-${hostC!}`]);
    const del = await h.request("DELETE", `/v1/admin/hosts/${hostC!}`, { token: admin });
    expect((await waitForTask(h, del.body.task_id)).status).toBe("succeeded");
    expect(objectsOf(hostC!)).toEqual({ containers: [], volumes: [] });
  });

  it("events of host A carry the right actor, owner and host", async () => {
    const evs = await hostEvents(hostA);
    const one = (type: string) => {
      const found = evs.filter((e) => e.type === type);
      expect(found.length, `${type} in ${evs.map((e) => e.type).join(",")}`).toBeGreaterThan(0);
      return found;
    };
    expect(one("host.created")).toEqual([
      expect.objectContaining({ actor_id: adminId, user_id: ua.id, host_id: hostA, task_id: createA, level: "info" }),
    ]);
    for (const type of ["host.started", "host.stopped", "host.rebuilt", "host.deleted"]) {
      for (const e of one(type)) {
        // Written by the worker: system work has no actor; the owner is the user the event concerns.
        expect(e, type).toMatchObject({ actor_id: null, user_id: ua.id, host_id: hostA });
        expect(e.task_id, type).toBeTruthy();
      }
    }
    expect(one("host.stopped").map((e) => e.metadata.reason)).toEqual(["requested"]);
    expect(one("host.deleted")[0]).toMatchObject({ level: "warn", metadata: { keep_home: false } });
    expect(one("host.start.requested").every((e) => e.actor_id === adminId && e.user_id === ua.id)).toBe(true);
    expect(one("host.stop.requested").every((e) => e.actor_id === adminId && e.user_id === ua.id)).toBe(true);
    expect(one("host.delete.requested")[0]).toMatchObject({ actor_id: adminId, user_id: ua.id, metadata: { keep_home: false } });
    const rebuilds = one("host.rebuild.requested");
    expect(rebuilds.map((e) => e.actor_id).sort()).toEqual([adminId, ua.id].sort());
    for (const e of rebuilds) expect(e.metadata).toEqual({ mode: "preserve-home" });
    for (const type of ["task.started", "task.succeeded", "task.canceled"]) {
      for (const e of one(type)) {
        expect(e, type).toMatchObject({ actor_id: null, host_id: hostA });
        expect(e.task_id, type).toBeTruthy();
        expect(e.metadata.kind, type).toMatch(/^host\./);
      }
    }
    // One task.started per task that ran (the canceled pending start never ran).
    const ran = await sql()<{ id: string }[]>`select id from tasks where host_id = ${hostA} and started_at is not null`;
    expect(one("task.started").map((e) => e.task_id).sort()).toEqual(ran.map((r) => r.id).sort());
  });

  // docs/api.md#events: user_id is the user the event concerns — for host work, the owner.
  it("task.* events written by the worker name the host's owner as user_id", async () => {
    const evs = (await hostEvents(hostA)).filter((e) => ["task.started", "task.succeeded"].includes(e.type));
    expect(evs.length).toBeGreaterThan(0);
    for (const e of evs) expect(e.user_id).toBe(ua.id);
  });
});

describe("HOST_IMAGE absent from the engine", () => {
  let h2: ApiHarness;
  let w2: WorkerHarness;
  beforeAll(async () => {
    h2 = await createApiHarness();
    w2 = await startTestWorker(h2, { HOST_IMAGE: "cloud-cli-proxy/host:does-not-exist" });
  });
  afterAll(async () => {
    await w2?.stop();
    if (h2) removeInstanceObjects(h2.prefix);
    await h2?.close();
  });

  it("the create task fails image_missing, the host is failed, host.failed is recorded, nothing is left running", async () => {
    const u = await h2.createUser();
    const res = await h2.request("POST", "/v1/admin/hosts", { token: await h2.adminToken(), body: { user_id: u.id } });
    expect(res.status, res.text).toBe(202);
    const hostId = res.body.host.id;
    const t = await waitForTask(h2, res.body.task_id);
    expect(t.status, JSON.stringify(t)).toBe("failed");
    expect(t.error_code).toBe("image_missing");
    expect(t.error_message).toContain("cloud-cli-proxy/host:does-not-exist");
    expect(t.steps.map((s: { name: string; status: string }) => `${s.name}:${s.status}`).slice(0, 2)).toEqual([
      "check_images:failed", "prepare_keys:pending",
    ]);
    const get = await h2.request("GET", `/v1/admin/hosts/${hostId}`, { token: await h2.adminToken() });
    expect(get.body.host.status).toBe("failed");
    expect(get.body.last_task).toMatchObject({ id: res.body.task_id, status: "failed", error_code: "image_missing" });
    const evs = await h2.database.sql<{ type: string; level: string; user_id: string | null; metadata: Record<string, unknown> }[]>`
      select type, level, user_id, metadata from events where host_id = ${hostId} order by created_at, id`;
    expect(evs.find((e) => e.type === "host.failed")).toMatchObject({
      level: "error", user_id: u.id, metadata: { error_code: "image_missing" },
    });
    expect(evs.find((e) => e.type === "task.failed")).toMatchObject({ level: "error", metadata: { kind: "host.create", error_code: "image_missing" } });
    expect(instanceObjects(h2.prefix).containers).toEqual([]);
  });
});
