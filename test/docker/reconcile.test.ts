import { randomUUID } from "node:crypto";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runReconcile } from "../../worker/schedulers/reconcile.js";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { waitUntil } from "../../shared/test/processes.js";
import {
  docker,
  instanceObjects,
  removeInstanceObjects,
  startTestWorker,
  waitForTask,
  type WorkerHarness,
} from "../../shared/test/worker-harness.js";

/**
 * The reconciler against the real engine (docs/architecture.md#schedulers, checklist 101, 102): drift made
 * behind the worker's back with the docker CLI, then `runReconcile` called directly (the
 * scheduler interval is an hour) — except in the last test, which lets the scheduler fire.
 */

let h: ApiHarness;
let w: WorkerHarness;
let admin: string;
let hostId: string;
const extraWorkers: WorkerHarness[] = [];

const gw = (id: string) => `ccp-gw-${id}`;
const hc = (id: string) => `ccp-host-${id}`;
const home = (id: string) => `ccp-home-${id}`;

function banner(ip: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(22, ip);
    s.setTimeout(5000, () => s.destroy(new Error("timeout")));
    s.once("data", (d) => {
      s.destroy();
      resolve(String(d).split("\r\n")[0]!);
    });
    s.on("error", reject);
  });
}

const inspect = (name: string, fmt: string) => docker(["inspect", "-f", fmt, name]);
const running = (name: string) => inspect(name, "{{.State.Running}}") === "true";
const startedAt = (name: string) => new Date(inspect(name, "{{.State.StartedAt}}")).getTime();
const exists = (name: string, kind: "container" | "volume" = "container") => {
  try {
    docker([kind, "inspect", name]);
    return true;
  } catch {
    return false;
  }
};

interface TaskRowLite {
  id: string;
  kind: string;
  status: string;
  requested_by: string;
  error_code: string | null;
}

async function hostTasks(id: string): Promise<TaskRowLite[]> {
  return h.database.sql<TaskRowLite[]>`
    select id, kind, status, requested_by, error_code from tasks where host_id = ${id} order by created_at, id`;
}

async function hostRow(id: string) {
  const [row] = await h.database.sql<
    { status: string; desired_state: string; repair_attempts: number; repair_not_before: Date | null; management_address: string | null }[]
  >`select status, desired_state, repair_attempts, repair_not_before, management_address from hosts where id = ${id}`;
  // The shared client hands timestamps through as strings (see shared/test/rows.ts).
  return { ...row!, repair_not_before: row!.repair_not_before ? new Date(row!.repair_not_before) : null };
}

async function eventsOf(type: string, opts: { hostId?: string; taskId?: string } = {}) {
  const rows = await h.database.sql<{ type: string; task_id: string | null; host_id: string | null; metadata: Record<string, unknown> }[]>`
    select type, task_id, host_id, metadata from events where type = ${type} order by created_at, id`;
  return rows.filter((e) => (!opts.hostId || e.host_id === opts.hostId) && (!opts.taskId || e.task_id === opts.taskId));
}

/** Run one reconcile cycle and return the tasks it created for `id`. */
async function reconcileOnce(id: string, deps = w.deps) {
  const before = new Set((await hostTasks(id)).map((t) => t.id));
  const result = await runReconcile(deps);
  const created = (await hostTasks(id)).filter((t) => !before.has(t.id));
  return { result, created };
}

async function createHost(): Promise<string> {
  const u = await h.createUser();
  const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } });
  expect(res.status, res.text).toBe(202);
  const t = await waitForTask(h, res.body.task_id);
  expect(t.status, JSON.stringify(t)).toBe("succeeded");
  return res.body.host.id as string;
}

async function expectRunningWithSsh(id: string) {
  const row = await hostRow(id);
  expect(row.status).toBe("running");
  expect(running(gw(id))).toBe(true);
  expect(running(hc(id))).toBe(true);
  expect(startedAt(hc(id))).toBeGreaterThanOrEqual(startedAt(gw(id)));
  expect(await banner(row.management_address!)).toMatch(/^SSH-2\.0-OpenSSH/);
}

/** Docker holds exactly the containers and homes of existing hosts, plus retained homes. */
async function expectInventory() {
  const hosts = await h.database.sql<{ id: string }[]>`select id from hosts`;
  const retained = await h.database.sql<{ volume_name: string }[]>`select volume_name from retained_volumes`;
  expect(hosts.map((x) => x.id)).toEqual([hostId]);
  expect(retained).toHaveLength(1);
  expect(instanceObjects(h.prefix)).toEqual({
    containers: hosts.flatMap((x) => [gw(x.id), hc(x.id)]).sort(),
    volumes: [...hosts.map((x) => home(x.id)), ...retained.map((r) => r.volume_name)].sort(),
  });
}

beforeAll(async () => {
  h = await createApiHarness();
  w = await startTestWorker(h);
  admin = await h.adminToken();
  hostId = await createHost();
});

afterAll(async () => {
  for (const x of extraWorkers) await x.stop();
  await w?.stop();
  if (h) removeInstanceObjects(h.prefix);
  await h?.close();
});

describe("reconcile repairs drift on the real engine", () => {
  it("a host container removed behind the worker's back is recreated (host.ensure-running, system:reconcile)", async () => {
    docker(["rm", "-f", hc(hostId)]);
    const { result, created } = await reconcileOnce(hostId);
    expect(result.repairs).toBe(1);
    expect(created).toHaveLength(1);
    expect(created[0]).toMatchObject({ kind: "host.ensure-running", requested_by: "system:reconcile" });
    const drift = await eventsOf("reconcile.drift.detected", { taskId: created[0]!.id });
    expect(drift).toHaveLength(1);
    expect(drift[0]!.metadata).toMatchObject({ expected: "running", observed: "host container missing", action: "host.ensure-running" });
    const t = await waitForTask(h, created[0]!.id);
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    expect(exists(hc(hostId))).toBe(true);
    await expectRunningWithSsh(hostId);
    // A success resets the backoff (docs/architecture.md#schedulers).
    expect(await hostRow(hostId)).toMatchObject({ repair_attempts: 0, repair_not_before: null });
  });

  it("a stopped host container is started again (checklist 101)", async () => {
    docker(["stop", "-t", "1", hc(hostId)]);
    expect(running(hc(hostId))).toBe(false);
    const { created } = await reconcileOnce(hostId);
    expect(created.map((t) => [t.kind, t.requested_by])).toEqual([["host.ensure-running", "system:reconcile"]]);
    const drift = await eventsOf("reconcile.drift.detected", { taskId: created[0]!.id });
    expect(drift[0]?.metadata).toMatchObject({ observed: "host container stopped" });
    expect((await waitForTask(h, created[0]!.id)).status).toBe("succeeded");
    await expectRunningWithSsh(hostId);
  });

  it("a restarted gateway makes the host container restart after it (system:gateway-restart, checklist 102)", async () => {
    const hostStartedBefore = startedAt(hc(hostId));
    docker(["restart", "-t", "1", gw(hostId)]);
    const gwStarted = startedAt(gw(hostId));
    expect(gwStarted).toBeGreaterThan(hostStartedBefore);
    const { created } = await reconcileOnce(hostId);
    expect(created.map((t) => [t.kind, t.requested_by])).toEqual([["host.ensure-running", "system:gateway-restart"]]);
    expect(await eventsOf("host.gateway.restarted", { taskId: created[0]!.id })).toHaveLength(1);
    const drift = await eventsOf("reconcile.drift.detected", { taskId: created[0]!.id });
    expect(drift[0]?.metadata).toMatchObject({ observed: "gateway restarted after the host" });
    expect((await waitForTask(h, created[0]!.id)).status).toBe("succeeded");
    // The gateway was not restarted again; the host container was, after it.
    expect(startedAt(gw(hostId))).toBe(gwStarted);
    expect(startedAt(hc(hostId))).toBeGreaterThan(gwStarted);
    await expectRunningWithSsh(hostId);
    // The host's network namespace is the gateway's current one again: sshd answers through it.
    const ns = (c: string) => docker(["exec", c, "readlink", "/proc/1/ns/net"]);
    expect(ns(hc(hostId))).toBe(ns(gw(hostId)));
  });

  it("backs off: a failed repair is not retried before repair_not_before, then retried and reset by success", async () => {
    // Drift whose repair fails for real: Docker refuses a CPU limit above the machine's CPUs.
    docker(["rm", "-f", hc(hostId)]);
    await h.database.sql`update hosts set cpu_limit = 64 where id = ${hostId}`;
    const t0 = Date.now();
    const first = await reconcileOnce(hostId);
    expect(first.created.map((t) => t.kind)).toEqual(["host.ensure-running"]);
    const failed = await waitForTask(h, first.created[0]!.id);
    expect(failed.status).toBe("failed");
    expect(failed.error_code).toBe("container_start_failed");
    const afterFail = await hostRow(hostId);
    expect(afterFail.status).toBe("failed");
    expect(afterFail.repair_attempts).toBe(1);
    const nb = afterFail.repair_not_before!.getTime();
    expect(nb).toBeGreaterThanOrEqual(t0 + 29_000);
    expect(nb).toBeLessThanOrEqual(Date.now() + 31_000);

    // Right after: drift (failed, container missing), no live task, but repair_not_before is ahead.
    for (let i = 0; i < 2; i++) {
      const again = await reconcileOnce(hostId);
      expect(again.created).toEqual([]);
      expect(again.result.repairs).toBe(0);
    }
    expect((await hostRow(hostId)).repair_attempts).toBe(1);

    // Past repair_not_before (a clock 31 s ahead): `failed` with desired running → ensure-running.
    await h.database.sql`update hosts set cpu_limit = 2 where id = ${hostId}`;
    const later = new Date(Date.now() + 31_000);
    const retry = await reconcileOnce(hostId, { ...w.deps, clock: () => later });
    expect(retry.created.map((t) => [t.kind, t.requested_by])).toEqual([["host.ensure-running", "system:reconcile"]]);
    const drift = await eventsOf("reconcile.drift.detected", { taskId: retry.created[0]!.id });
    expect(drift[0]?.metadata).toMatchObject({ observed: "failed" });
    // The second attempt doubles the delay (60 s), counted from the reconciler's clock.
    // (Read while the repair runs: it takes over a second, and only its success resets these.)
    const pending = await hostRow(hostId);
    expect(pending.repair_attempts).toBe(2);
    expect(pending.repair_not_before!.getTime()).toBe(later.getTime() + 60_000);
    expect((await waitForTask(h, retry.created[0]!.id)).status).toBe("succeeded");
    await expectRunningWithSsh(hostId);
    expect(await hostRow(hostId)).toMatchObject({ repair_attempts: 0, repair_not_before: null });
  });

  it("desired stopped but containers running → host.stop from the reconciler", async () => {
    const stop = await h.request("POST", `/v1/admin/hosts/${hostId}/stop`, { token: admin });
    expect((await waitForTask(h, stop.body.task_id)).status).toBe("succeeded");
    expect(running(hc(hostId))).toBe(false);
    expect(running(gw(hostId))).toBe(false);
    // Nothing to do while Docker agrees.
    expect((await reconcileOnce(hostId)).created).toEqual([]);

    docker(["start", gw(hostId)]);
    docker(["start", hc(hostId)]);
    const { created } = await reconcileOnce(hostId);
    expect(created.map((t) => [t.kind, t.requested_by])).toEqual([["host.stop", "system:reconcile"]]);
    const drift = await eventsOf("reconcile.drift.detected", { taskId: created[0]!.id });
    expect(drift[0]?.metadata).toMatchObject({ expected: "stopped", observed: "containers running", action: "host.stop" });
    expect((await waitForTask(h, created[0]!.id)).status).toBe("succeeded");
    expect(running(hc(hostId))).toBe(false);
    expect(running(gw(hostId))).toBe(false);
    const stopped = await eventsOf("host.stopped", { taskId: created[0]!.id });
    expect(stopped[0]?.metadata).toMatchObject({ reason: "reconcile" });
    // A successful repair resets the backoff (docs/architecture.md#schedulers), whatever the repair was.
    expect(await hostRow(hostId)).toMatchObject({ status: "stopped", desired_state: "stopped", repair_attempts: 0, repair_not_before: null });
    expect((await reconcileOnce(hostId)).created).toEqual([]);

    const start = await h.request("POST", `/v1/admin/hosts/${hostId}/start`, { token: admin });
    expect((await waitForTask(h, start.body.task_id)).status).toBe("succeeded");
    await expectRunningWithSsh(hostId);
  });

  it("removes labelled orphans of its own instance only", async () => {
    const orphan = randomUUID();
    const foreign = randomUUID();
    const labels = (id: string, instance: string) => [
      "--label", "cloud-cli-proxy.managed=true",
      "--label", "cloud-cli-proxy.role=host",
      "--label", `cloud-cli-proxy.host_id=${id}`,
      "--label", `cloud-cli-proxy.instance=${instance}`,
    ];
    const image = w.config.GATEWAY_IMAGE;
    const foreignInstance = `${h.prefix}x`;
    try {
      docker(["run", "-d", "--name", hc(orphan), ...labels(orphan, h.prefix), "--network", "none", "--entrypoint", "sleep", image, "infinity"]);
      docker(["volume", "create", ...labels(orphan, h.prefix), home(orphan)]);
      docker(["run", "-d", "--name", hc(foreign), ...labels(foreign, foreignInstance), "--network", "none", "--entrypoint", "sleep", image, "infinity"]);
      docker(["volume", "create", ...labels(foreign, foreignInstance), home(foreign)]);

      const { result } = await reconcileOnce(hostId);
      expect(result.orphans).toBe(2);
      expect(exists(hc(orphan))).toBe(false);
      expect(exists(home(orphan), "volume")).toBe(false);
      const removed = await eventsOf("reconcile.orphan.removed", { hostId: orphan });
      expect(removed.map((e) => e.metadata).sort((a, b) => String(a.object).localeCompare(String(b.object)))).toEqual([
        { object: "container", name: hc(orphan) },
        { object: "volume", name: home(orphan) },
      ]);
      // Another deployment's objects on the same engine are not this reconciler's business.
      expect(exists(hc(foreign))).toBe(true);
      expect(running(hc(foreign))).toBe(true);
      expect(exists(home(foreign), "volume")).toBe(true);
      expect(await eventsOf("reconcile.orphan.removed", { hostId: foreign })).toEqual([]);
      // The real host was not touched.
      await expectRunningWithSsh(hostId);
    } finally {
      removeInstanceObjects(foreignInstance);
      for (const [kind, name] of [["container", hc(orphan)], ["volume", home(orphan)]] as const) {
        if (exists(name, kind)) docker(kind === "container" ? ["rm", "-f", name] : ["volume", "rm", "-f", name]);
      }
    }
    expect(instanceObjects(foreignInstance)).toEqual({ containers: [], volumes: [] });
  });

  it("a kept home (DELETE ?keep_home=true) survives reconcile cycles", async () => {
    const other = await createHost();
    const del = await h.request("DELETE", `/v1/admin/hosts/${other}?keep_home=true`, { token: admin });
    expect(del.status, del.text).toBe(202);
    expect((await waitForTask(h, del.body.task_id)).status).toBe("succeeded");
    expect(exists(gw(other))).toBe(false);
    expect(exists(hc(other))).toBe(false);
    expect(exists(home(other), "volume")).toBe(true);
    for (let i = 0; i < 3; i++) {
      const { result } = await reconcileOnce(hostId);
      expect(result.orphans).toBe(0);
    }
    expect(exists(home(other), "volume")).toBe(true);
    expect(await eventsOf("reconcile.orphan.removed", { hostId: other })).toEqual([]);
  });

  it("leaves exactly the objects of existing hosts (and retained homes)", async () => {
    await runReconcile(w.deps);
    await expectInventory();
  });

  it("the reconcile scheduler repairs a stopped host by itself within its interval", async () => {
    // A replica configured with a 2 s interval re-registers the shared scheduler.
    extraWorkers.push(await startTestWorker(h, { RECONCILE_INTERVAL_SECONDS: "2" }));
    const before = (await eventsOf("reconcile.drift.detected", { hostId })).length;
    docker(["stop", "-t", "1", hc(hostId)]);
    await waitUntil("the scheduled reconcile to repair the host", 45_000, async () => {
      const row = await hostRow(hostId);
      return row.status === "running" && running(hc(hostId)) && (await eventsOf("reconcile.drift.detected", { hostId })).length > before
        ? true
        : undefined;
    });
    await expectRunningWithSsh(hostId);
    const live = (await hostTasks(hostId)).filter((t) => t.status === "pending" || t.status === "running");
    for (const t of live) expect((await waitForTask(h, t.id)).status).toBe("succeeded");
    await expectInventory();
  }, 90_000);
});
