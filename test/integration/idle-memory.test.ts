import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseWorkerConfig } from "../../shared/config/worker.js";
import { createLogger } from "../../shared/logger.js";
import { countSessionConnections, effectiveIdlePolicy } from "../../shared/services/hosts/idle-policy.js";
import { requestWake, waitForWake } from "../../shared/services/hosts/wake.js";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { memoryWorkerEnv, waitForTask } from "../../shared/test/worker-harness.js";
import type { WorkerDeps } from "../../worker/deps.js";
import { gatewayName, hostContainerName } from "../../worker/hosts/names.js";
import { startWorker } from "../../worker/main.js";
import { MemoryRuntime } from "../../worker/runtime/memory/memory-runtime.js";
import { runIdleScan } from "../../worker/schedulers/idle.js";

/**
 * Idle stop and wake (docs/idle.md) on the in-memory runtime: the policy's resolution and its
 * validation, the scan's decisions (driven by hand: `last_active_at` is moved into the past
 * instead of waiting minutes), and the wake of a host stopped for idleness. The real engine and
 * the real OpenSSH client: test/docker/idle-wake.test.ts.
 */
let h: ApiHarness;
let admin: string;
let deps: WorkerDeps;
let stopWorker: () => Promise<void>;
const mem = new MemoryRuntime();

beforeAll(async () => {
  h = await createApiHarness();
  admin = await h.adminToken();
  // The scheduler itself never fires during the suite: every scan is run by a test.
  const config = parseWorkerConfig(memoryWorkerEnv(h, { IDLE_SCAN_INTERVAL_SECONDS: "86400", IDLE_STOP_MINUTES: "0", IDLE_CPU_PERCENT: "5" }));
  mem.addImage(config.HOST_IMAGE);
  mem.addImage(config.GATEWAY_IMAGE);
  const logger = createLogger({ level: "warn" }, new Writable({ write: (_c, _e, cb) => cb() }));
  const w = await startWorker(config, logger, { database: h.database, runtime: mem, sshProbe: mem.sshProbe });
  deps = w.deps;
  stopWorker = w.stop;
});
afterAll(async () => {
  await stopWorker?.();
  await h?.close();
});

async function createHost(extra: Record<string, unknown> = {}): Promise<{ hostId: string; userId: string; shortId: string; password: string }> {
  const u = await h.createUser();
  const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id, ...extra } });
  expect(res.status, res.text).toBe(202);
  expect((await waitForTask(h, res.body.task_id, 30_000)).status).toBe("succeeded");
  return { hostId: res.body.host.id, userId: u.id, shortId: res.body.host.short_id, password: u.password };
}

const patchHost = (hostId: string, body: unknown) => h.request("PATCH", `/v1/admin/hosts/${hostId}`, { token: admin, body });

const hostRow = async (hostId: string) => {
  const [row] = await h.database.sql<
    { status: string; desired_state: string; last_active_at: Date | null; idle_stopped_at: Date | null }[]
  >`select status, desired_state, last_active_at, idle_stopped_at from hosts where id = ${hostId}`;
  return row!;
};

/** The idle window as if it had started `minutes` ago (instead of waiting for it). */
const idleFor = (hostId: string, minutes: number) =>
  h.database.sql`update hosts set last_active_at = now() - make_interval(mins => ${minutes}) where id = ${hostId}`;

const tasksOf = (hostId: string) =>
  h.database.sql<{ id: string; kind: string; requested_by: string; status: string; payload: Record<string, unknown> }[]>`
    select id, kind, requested_by, status, payload from tasks where host_id = ${hostId} order by created_at`;

const eventsOf = (hostId: string, type: string) =>
  h.database.sql<{ metadata: Record<string, unknown>; task_id: string | null }[]>`
    select metadata, task_id from events where host_id = ${hostId} and type = ${type} order by created_at`;

/** Two scans give a CPU figure (the first only stores the cumulative reading). */
async function scanTwice() {
  await runIdleScan(deps);
  return runIdleScan(deps);
}

describe("idle policy", () => {
  it("resolves host → user → global, and always_on wins", () => {
    const g = { stopMinutes: 30, cpuPercent: 5 };
    const none = { idleStopMinutes: null, idleCpuPercent: null };
    expect(effectiveIdlePolicy({ ...none, alwaysOn: false }, none, g)).toMatchObject({
      stopMinutes: 30,
      cpuPercent: 5,
      source: { stopMinutes: "global", cpuPercent: "global" },
    });
    expect(effectiveIdlePolicy({ ...none, alwaysOn: false }, { idleStopMinutes: 10, idleCpuPercent: 20 }, g)).toMatchObject({
      stopMinutes: 10,
      cpuPercent: 20,
      source: { stopMinutes: "user", cpuPercent: "user" },
    });
    // 0 on the host is a setting ("never"), not "inherit".
    expect(effectiveIdlePolicy({ idleStopMinutes: 0, idleCpuPercent: 1, alwaysOn: false }, { idleStopMinutes: 10, idleCpuPercent: 20 }, g)).toMatchObject({
      stopMinutes: 0,
      cpuPercent: 1,
      source: { stopMinutes: "host", cpuPercent: "host" },
    });
    expect(effectiveIdlePolicy({ idleStopMinutes: 5, idleCpuPercent: null, alwaysOn: true }, none, g).stopMinutes).toBe(0);
  });

  it("counts established non-loopback connections to 22 and 6901 only", () => {
    const table = [
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
      "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1", // listening 22
      "   1: 0200000A:0016 0100000A:D2F4 01 00000000:00000000 00:00000000 00000000     0        0 2 1", // 10.0.0.1 → 22
      "   2: 0200000A:1AF5 0100000A:D2F5 01 00000000:00000000 00:00000000 00000000     0        0 3 1", // 10.0.0.1 → 6901
      "   3: 0100007F:0016 0100007F:D2F6 01 00000000:00000000 00:00000000 00000000     0        0 4 1", // loopback ssh
      "   4: 0200000A:D2F7 0100000A:0016 01 00000000:00000000 00:00000000 00000000     0        0 5 1", // outbound to 22
      "   5: 0200000A:0016 0100000A:D2F8 06 00000000:00000000 00:00000000 00000000     0        0 6 1", // TIME_WAIT
    ].join("\n");
    expect(countSessionConnections(table)).toBe(2);
    expect(countSessionConnections("cat: /proc/net/tcp: No such file")).toBeNull();
  });

  it("PATCH validates and answers the host with its policy; bad input is a 400 envelope", async () => {
    const { hostId, userId } = await createHost();
    for (const bad of [{}, { idle_stop_minutes: -1 }, { idle_stop_minutes: 1.5 }, { idle_stop_minutes: 525_601 }, { idle_cpu_percent: 101 }, { always_on: "yes" }, { idle_minutes: 3 }]) {
      const res = await patchHost(hostId, bad);
      expect(res.status, `${JSON.stringify(bad)}: ${res.text}`).toBe(400);
      expect(res.body.code, res.text).toBe("invalid_request");
    }
    const ok = await patchHost(hostId, { idle_stop_minutes: 15, idle_cpu_percent: 10, always_on: true });
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body.host).toMatchObject({ id: hostId, idle_stop_minutes: 15, idle_cpu_percent: 10, always_on: true, idle_stopped_at: null });
    const back = await patchHost(hostId, { idle_stop_minutes: null, always_on: false });
    expect(back.body.host).toMatchObject({ idle_stop_minutes: null, idle_cpu_percent: 10, always_on: false });
    expect((await eventsOf(hostId, "host.updated")).length).toBe(2);
    // The same values again: nothing changes, no event.
    expect((await patchHost(hostId, { always_on: false })).status).toBe(200);
    expect((await eventsOf(hostId, "host.updated")).length).toBe(2);
    // The host detail carries it too.
    const detail = await h.request("GET", `/v1/admin/hosts/${hostId}`, { token: admin });
    expect(detail.body.host.idle_cpu_percent).toBe(10);

    const badUser = await h.request("PATCH", `/v1/admin/users/${userId}`, { token: admin, body: { idle_cpu_percent: 101 } });
    expect(badUser.status, badUser.text).toBe(400);
    expect((await h.request("PATCH", `/v1/admin/users/${userId}`, { token: admin, body: {} })).status).toBe(400);
    const user = await h.request("PATCH", `/v1/admin/users/${userId}`, { token: admin, body: { idle_stop_minutes: 45, idle_cpu_percent: 3 } });
    expect(user.status, user.text).toBe(200);
    expect(user.body.user).toMatchObject({ id: userId, status: "active", idle_stop_minutes: 45, idle_cpu_percent: 3 });
    const both = await h.request("PATCH", `/v1/admin/users/${userId}`, { token: admin, body: { status: "active", idle_stop_minutes: null } });
    expect(both.body.user).toMatchObject({ status: "active", idle_stop_minutes: null });
    const unknown = await patchHost("00000000-0000-4000-8000-000000000000", { always_on: true });
    expect(unknown.status).toBe(404);
  });
});

describe("idle scan", () => {
  it("stops a host idle past its policy: host.stop by system:idle, an event, idle_stopped_at; then a login wakes it", async () => {
    const { hostId } = await createHost();
    expect((await patchHost(hostId, { idle_stop_minutes: 1 })).status).toBe(200);
    mem.setUsage(hostContainerName(hostId), { cpuUsageNs: 5e9, memoryBytes: 300 * 1024 * 1024 });
    // Idle, but not for long enough yet.
    await scanTwice();
    expect(await hostRow(hostId)).toMatchObject({ status: "running", desired_state: "running", idle_stopped_at: null });
    await idleFor(hostId, 2);
    const r = await runIdleScan(deps);
    expect(r.idle_stopped).toBe(1);
    const row = await hostRow(hostId);
    expect(row.desired_state).toBe("stopped");
    expect(row.idle_stopped_at).not.toBeNull();
    const stop = (await tasksOf(hostId)).filter((t) => t.kind === "host.stop");
    expect(stop.map((t) => t.requested_by)).toEqual(["system:idle"]);
    expect((await waitForTask(h, stop[0]!.id, 30_000)).status).toBe("succeeded");
    expect((await hostRow(hostId)).status).toBe("stopped");
    expect(mem.containers.get(hostContainerName(hostId))?.running).toBe(false);
    const [ev] = await eventsOf(hostId, "host.idle_stopped");
    expect(ev!.task_id).toBe(stop[0]!.id);
    expect(ev!.metadata).toMatchObject({ policy_minutes: 1, cpu_percent: 0, memory_bytes: 300 * 1024 * 1024, memory_limit_mb: 4096, cpu_limit: 2 });
    expect(ev!.metadata.idle_minutes).toBeGreaterThanOrEqual(2);
    const stopped = await h.request("GET", "/v1/admin/events?type=host.stopped&host_id=" + hostId, { token: admin });
    expect(stopped.body.events[0].metadata.reason).toBe("idle");

    // The dashboard counts it, with what it frees.
    const dash = await h.request("GET", "/v1/admin/dashboard/stats", { token: admin });
    expect(dash.status, dash.text).toBe(200);
    expect(dash.body.idle.stopped_hosts).toBeGreaterThanOrEqual(1);
    expect(dash.body.idle.memory_limit_mb).toBeGreaterThanOrEqual(4096);
    expect(dash.body.idle.memory_in_use_mb).toBeGreaterThanOrEqual(300);
    expect(dash.body.idle.stops_24h).toBeGreaterThanOrEqual(1);

    // An SSH login's wake: a host.start by system:wake, joined by a second arrival, then host.woken.
    const first = await requestWake(h.database.db, hostId, { via: "ssh", now: new Date() });
    expect(first.result).toMatchObject({ state: "waking", created: true });
    const second = await requestWake(h.database.db, hostId, { via: "desktop", now: new Date() });
    expect(second.result).toMatchObject({ state: "waking", created: false });
    expect(second.task).toBeNull();
    await h.queues.get("host-ops").add("host.start", { taskId: first.task!.id }, { jobId: first.task!.id });
    const seen: number[] = [];
    const end = await waitForWake(h.database.db, hostId, first.task!.id, { timeoutMs: 30_000, onProgress: (p) => seen.push(p.percent) });
    expect(end).toMatchObject({ state: "running" });
    expect(seen.at(-1)).toBe(100);
    const woken = await tasksOf(hostId);
    expect(woken.at(-1)).toMatchObject({ kind: "host.start", requested_by: "system:wake", payload: { woken_by: "ssh" } });
    const [wev] = await eventsOf(hostId, "host.woken");
    expect(wev!.metadata.via).toBe("ssh");
    expect(typeof wev!.metadata.duration_ms).toBe("number");
    const after = await hostRow(hostId);
    expect(after).toMatchObject({ status: "running", desired_state: "running", idle_stopped_at: null });
    expect(after.last_active_at).not.toBeNull();
    expect((await requestWake(h.database.db, hostId, { via: "ssh", now: new Date() })).result).toEqual({ state: "running" });
  });

  it("never stops an always-on host (policy set at create)", async () => {
    const bad = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: (await h.createUser()).id, idle_cpu_percent: -1 } });
    expect(bad.status, bad.text).toBe(400);
    const { hostId } = await createHost({ idle_stop_minutes: 1, always_on: true });
    const detail = await h.request("GET", `/v1/admin/hosts/${hostId}`, { token: admin });
    expect(detail.body.host).toMatchObject({ idle_stop_minutes: 1, idle_cpu_percent: null, always_on: true });
    await scanTwice();
    await idleFor(hostId, 60);
    const r = await runIdleScan(deps);
    expect(r.idle_stopped).toBe(0);
    expect(await hostRow(hostId)).toMatchObject({ status: "running", desired_state: "running", idle_stopped_at: null });
    expect((await tasksOf(hostId)).filter((t) => t.kind === "host.stop")).toEqual([]);
  });

  it("a session resets the idle window (a loopback one does not count)", async () => {
    const { hostId } = await createHost();
    expect((await patchHost(hostId, { idle_stop_minutes: 1 })).status).toBe(200);
    await scanTwice();
    mem.setTcpConnections(gatewayName(hostId), [
      { localPort: 22, remoteAddress: "10.201.0.1" },
      { localPort: 22, remoteAddress: "127.0.0.1" },
    ]);
    await idleFor(hostId, 5);
    const before = Date.now();
    await runIdleScan(deps);
    const row = await hostRow(hostId);
    expect(row).toMatchObject({ status: "running", desired_state: "running", idle_stopped_at: null });
    expect(new Date(row.last_active_at!).getTime()).toBeGreaterThanOrEqual(before - 1000);
    // The desktop counts too; once nothing is connected (only loopback left) the window runs again.
    mem.setTcpConnections(gatewayName(hostId), [{ localPort: 6901, remoteAddress: "10.201.0.1" }]);
    await idleFor(hostId, 5);
    await runIdleScan(deps);
    expect((await hostRow(hostId)).desired_state).toBe("running");
    mem.setTcpConnections(gatewayName(hostId), [{ localPort: 22, remoteAddress: "127.0.0.1" }]);
    await idleFor(hostId, 5);
    await runIdleScan(deps);
    expect((await hostRow(hostId)).desired_state).toBe("stopped");
  });

  it("CPU at or above the threshold keeps the host running", async () => {
    const { hostId } = await createHost();
    expect((await patchHost(hostId, { idle_stop_minutes: 1, idle_cpu_percent: 10 })).status).toBe(200);
    const name = hostContainerName(hostId);
    mem.setUsage(name, { cpuUsageNs: 0 });
    await runIdleScan(deps);
    await idleFor(hostId, 5);
    // Far more CPU time than the interval between two scans allows at 10 % of 2 CPUs.
    mem.setUsage(name, { cpuUsageNs: 3_600e9 });
    await runIdleScan(deps);
    const row = await hostRow(hostId);
    expect(row.desired_state).toBe("running");
    expect(Date.now() - new Date(row.last_active_at!).getTime()).toBeLessThan(60_000);
  });

  it("the entry script wakes a host stopped for idleness: its stage text says so, and host.woken names the script", async () => {
    const { hostId, shortId, password } = await createHost();
    expect((await patchHost(hostId, { idle_stop_minutes: 1 })).status).toBe(200);
    await scanTwice();
    await idleFor(hostId, 2);
    expect((await runIdleScan(deps)).idle_stopped).toBe(1);
    const stop = (await tasksOf(hostId)).find((t) => t.kind === "host.stop")!;
    expect((await waitForTask(h, stop.id, 30_000)).status).toBe("succeeded");

    // Held while the gateway starts, so the status is read mid-start.
    const held = mem.hold("startContainer", gatewayName(hostId));
    const auth = await h.request("POST", `/v1/entry/${shortId}/auth`, { body: { password } });
    expect(auth.status, auth.text).toBe(202);
    const task = (await tasksOf(hostId)).find((t) => t.id === auth.body.task_id)!;
    expect(task).toMatchObject({ kind: "host.ensure-running", payload: { woken_by: "script" } });
    await held.reached;
    const status = await h.request("GET", auth.body.status_url);
    expect(status.status, status.text).toBe(200);
    expect(status.body).toMatchObject({ task_status: "running", stage_text: "Waking your host (stopped while idle)..." });
    held.release();
    expect((await waitForTask(h, task.id, 30_000)).status).toBe("succeeded");
    const [ev] = await eventsOf(hostId, "host.woken");
    expect(ev!.metadata.via).toBe("script");
    expect((await hostRow(hostId)).idle_stopped_at).toBeNull();
  });

  it("a host stopped by an admin does not wake; the desktop of an idle-stopped one shows a waiting page", async () => {
    const { hostId } = await createHost();
    const stop = await h.request("POST", `/v1/admin/hosts/${hostId}/stop`, { token: admin });
    expect((await waitForTask(h, stop.body.task_id, 30_000)).status).toBe("succeeded");
    expect((await requestWake(h.database.db, hostId, { via: "ssh", now: new Date() })).result).toEqual({ state: "refused" });
    const vnc = await h.request("GET", `/v1/admin/hosts/${hostId}/vnc/`, { token: admin });
    expect(vnc.status, vnc.text).toBe(409);

    // Stopped for idleness instead (as the scan leaves it).
    await h.database.sql`update hosts set idle_stopped_at = now() where id = ${hostId}`;
    const page = await h.request("GET", `/v1/admin/hosts/${hostId}/vnc/`, { token: admin, headers: { accept: "text/html" } });
    expect(page.status, page.text).toBe(503);
    expect(page.headers.get("retry-after")).toBe("2");
    expect(page.text).toContain("Waking your host");
    const task = (await tasksOf(hostId)).at(-1)!;
    expect(task).toMatchObject({ kind: "host.start", requested_by: "system:wake", payload: { woken_by: "desktop" } });
    // An API client gets the JSON envelope.
    const api = await h.request("GET", `/v1/admin/hosts/${hostId}/vnc/`, { token: admin });
    if (api.status === 503) expect(api.body.code).toBe("host_waking");
    expect((await waitForTask(h, task.id, 30_000)).status).toBe("succeeded");
    const [ev] = await eventsOf(hostId, "host.woken");
    expect(ev!.metadata.via).toBe("desktop");
  });
});
