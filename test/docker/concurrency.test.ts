import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedis } from "../../shared/redis.js";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { buildDist, spawnLogged, type Spawned, waitUntil } from "../../shared/test/processes.js";
import {
  bareWorkerDeps,
  docker,
  ensureTestNetworks,
  instanceObjects,
  removeInstanceObjects,
  startTestWorker,
  TEST_MGMT_NETWORK,
  TEST_UNDERLAY_NETWORK,
  waitForTask,
  type WorkerHarness,
} from "../../shared/test/worker-harness.js";
import type { WorkerDeps } from "../../worker/deps.js";
import { runSweep } from "../../worker/schedulers/sweep.js";

/**
 * Task execution rules under concurrency and failure (docs/architecture.md#tasks, docs/architecture.md#schedulers; checklist 94,
 * 147, 148): several real workers on one Redis prefix, a worker process killed with SIGKILL
 * mid-task, and no worker at all.
 */

let h: ApiHarness;
let admin: string;
const workers: WorkerHarness[] = [];
const procs: Spawned[] = [];

const gw = (id: string) => `ccp-gw-${id}`;
const hc = (id: string) => `ccp-host-${id}`;
const ms = (iso: string) => new Date(iso).getTime();

interface Step {
  name: string;
  status: string;
  started_at: string | null;
  duration_ms: number | null;
}
interface Task {
  id: string;
  kind: string;
  status: string;
  attempt: number;
  error_code: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  steps: Step[];
}

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

async function getTask(id: string): Promise<Task> {
  const res = await h.request("GET", `/v1/admin/tasks/${id}`, { token: admin });
  expect(res.status, res.text).toBe(200);
  return res.body.task as Task;
}

async function getHost(id: string) {
  const res = await h.request("GET", `/v1/admin/hosts/${id}`, { token: admin });
  return res.body?.host as { id: string; status: string; management_address?: string | null } | undefined;
}

async function managementAddress(id: string): Promise<string> {
  const [row] = await h.database.sql<{ a: string }[]>`select management_address as a from hosts where id = ${id}`;
  return row!.a;
}

async function requestCreate(): Promise<{ hostId: string; taskId: string }> {
  const u = await h.createUser();
  const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } });
  expect(res.status, res.text).toBe(202);
  return { hostId: res.body.host.id, taskId: res.body.task_id };
}

async function deleteHosts(ids: string[]) {
  const dels = await Promise.all(ids.map((id) => h.request("DELETE", `/v1/admin/hosts/${id}`, { token: admin })));
  for (const d of dels) expect(d.status, d.text).toBe(202);
  const done = await Promise.all(dels.map((d) => waitForTask(h, d.body.task_id, 240_000)));
  for (const t of done) expect(t.status, JSON.stringify(t)).toBe("succeeded");
}

/** [start, end] of every step that actually ran (skipped steps carry no start). */
const stepIntervals = (t: Task) =>
  t.steps.filter((s) => s.started_at).map((s) => [ms(s.started_at!), ms(s.started_at!) + (s.duration_ms ?? 0)] as const);

async function stopWorkers() {
  for (const w of workers.splice(0)) await w.stop();
}

/** The worker as its own OS process (`node dist/main.js worker`) on this file's database and prefix. */
function spawnWorker(name: string): Spawned {
  const p = spawnLogged(process.execPath, ["dist/main.js", "worker"], {
    ...h.env,
    DATABASE_URL: h.env.DATABASE_URL,
    REDIS_PREFIX: h.prefix,
    MGMT_NETWORK: TEST_MGMT_NETWORK,
    EGRESS_UNDERLAY_NETWORK: TEST_UNDERLAY_NETWORK,
    WORKER_ID: name,
    WORKER_CONCURRENCY: "4",
    HEARTBEAT_INTERVAL_SECONDS: "1",
    RECONCILE_INTERVAL_SECONDS: "3600",
    EXPIRY_SCAN_INTERVAL_SECONDS: "3600",
    SWEEP_INTERVAL_SECONDS: "3600",
    CONTAINER_STOP_GRACE_SECONDS: "1",
    LOG_LEVEL: "info",
    LOG_FORMAT: "json",
  });
  procs.push(p);
  return p;
}

beforeAll(async () => {
  ensureTestNetworks();
  h = await createApiHarness();
  admin = await h.adminToken();
});

afterAll(async () => {
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
  await Promise.all(procs.map((p) => p.exited));
  await stopWorkers();
  if (h) removeInstanceObjects(h.prefix);
  await h?.close();
});

const BURST = 12;

describe("two workers on one prefix", () => {
  beforeAll(async () => {
    // Twenty hosts booting at once (sshd and a desktop each) load this 2-core machine to a load
    // average of 50: a host's sshd may take longer than the default 30 s to answer. This file
    // checks ordering and parallelism, not boot speed, so the readiness deadline is generous.
    const slowBoot = { SSH_READY_TIMEOUT_SECONDS: "150" };
    workers.push(
      await startTestWorker(h, { WORKER_ID: "w1", ...slowBoot }),
      await startTestWorker(h, { WORKER_ID: "w2", ...slowBoot }),
    );
  });
  afterAll(stopWorkers);

  const made: string[] = [];

  it("a burst of start/stop/rebuild/start for one host runs one at a time in creation order (checklist 94)", async () => {
    const { hostId, taskId } = await requestCreate();
    made.push(hostId);
    expect((await waitForTask(h, taskId)).status).toBe("succeeded");
    const pre = await h.request("POST", `/v1/admin/hosts/${hostId}/stop`, { token: admin });
    expect((await waitForTask(h, pre.body.task_id)).status).toBe("succeeded");

    const ops = ["start", "stop", "rebuild", "start"] as const;
    const ids: string[] = [];
    for (const op of ops) {
      const res = await h.request("POST", `/v1/admin/hosts/${hostId}/${op}`, { token: admin });
      expect(res.status, res.text).toBe(202);
      ids.push(res.body.task_id);
    }
    const done: Task[] = [];
    for (const id of ids) done.push(await waitForTask(h, id, 180_000));
    for (const t of done) expect(t.status, JSON.stringify(t)).toBe("succeeded");
    expect(done.map((t) => t.kind)).toEqual(["host.start", "host.stop", "host.rebuild", "host.start"]);
    // Creation order = the order they were sent, and execution follows it without overlap.
    const created = done.map((t) => ms(t.created_at));
    expect([...created].sort((a, b) => a - b)).toEqual(created);
    for (let i = 0; i + 1 < done.length; i++) {
      const [a, b] = [done[i]!, done[i + 1]!];
      expect(ms(a.finished_at!), `${a.kind} ends before ${b.kind} starts`).toBeLessThanOrEqual(ms(b.started_at!));
      const lastEnd = Math.max(...stepIntervals(a).map(([, e]) => e));
      const nextStart = Math.min(...stepIntervals(b).map(([s]) => s), Infinity);
      expect(lastEnd).toBeLessThanOrEqual(nextStart);
    }
    for (const t of done) {
      for (const [s, e] of stepIntervals(t)) {
        expect(s).toBeGreaterThanOrEqual(ms(t.started_at!));
        expect(e).toBeLessThanOrEqual(ms(t.finished_at!));
      }
    }
    // The first start did work, the last one found the rebuilt host running and skipped it all.
    expect(done[0]!.steps.some((s) => s.status === "succeeded")).toBe(true);
    expect(done[3]!.steps.every((s) => s.status === "skipped")).toBe(true);
    expect(done.every((t) => t.attempt === 1)).toBe(true);
    expect((await getHost(hostId))?.status).toBe("running");
    expect(await banner(await managementAddress(hostId))).toMatch(/^SSH-2\.0-OpenSSH/);
  }, 240_000);

  it("tasks of different hosts run in parallel", async () => {
    const [a, b] = await Promise.all([requestCreate(), requestCreate()]);
    made.push(a!.hostId, b!.hostId);
    const [ta, tb] = await Promise.all([waitForTask(h, a!.taskId), waitForTask(h, b!.taskId)]);
    expect(ta.status).toBe("succeeded");
    expect(tb.status).toBe("succeeded");
    const latestStart = Math.max(ms(ta.started_at), ms(tb.started_at));
    const earliestEnd = Math.min(ms(ta.finished_at), ms(tb.finished_at));
    expect(latestStart, "the two creates overlap in time").toBeLessThan(earliestEnd);
    await deleteHosts(made.splice(0));
    expect(instanceObjects(h.prefix)).toEqual({ containers: [], volumes: [] });
  }, 180_000);

  // Twelve, not twenty: on this 2-core machine twenty hosts booting at once (sshd and a desktop
  // each) drove the load average past 50 and gateways, sshd and probes past their deadlines —
  // the code from before issue 10 failed the same way. Twelve still needs both workers' slots
  // (WORKER_CONCURRENCY 4 each) and checks everything the burst is for.
  it("12 hosts created at once all reach running; deleting them leaves nothing", async () => {
    const users = [];
    for (let i = 0; i < BURST; i++) users.push(await h.createUser());
    const t0 = Date.now();
    const res = await Promise.all(users.map((u) => h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } })));
    for (const r of res) expect(r.status, r.text).toBe(202);
    const ids = res.map((r) => r.body.host.id as string);
    const tasks = await Promise.all(res.map((r) => waitForTask(h, r.body.task_id, 300_000)));
    const elapsed = Date.now() - t0;
    for (const t of tasks) expect(t.status, JSON.stringify(t)).toBe("succeeded");
    for (const id of ids) expect((await getHost(id))?.status).toBe("running");
    const objs = instanceObjects(h.prefix);
    expect(objs.containers).toHaveLength(2 * BURST);
    expect(objs.containers).toEqual(ids.flatMap((id) => [gw(id), hc(id)]).sort());
    expect(objs.volumes).toHaveLength(BURST);
    const running = docker(["ps", "--format", "{{.Names}}", "--filter", `label=cloud-cli-proxy.instance=${h.prefix}`]).split("\n");
    expect(running.filter(Boolean)).toHaveLength(2 * BURST);
    // Never more at once than the two workers' slots (2 × WORKER_CONCURRENCY) …
    // Measured over each task's steps (its last attempt), not started_at…finished_at: a task retried
    // after a transient error (more frequent on a loaded machine) holds no slot while it waits for
    // its retry, yet that wait lies between its started_at and finished_at.
    type Step = { started_at: string | null; duration_ms: number | null };
    const busy = (t: { steps: Step[] }) => {
      const ran = t.steps.filter((st) => st.started_at !== null);
      const start = Math.min(...ran.map((st) => ms(st.started_at!)));
      const end = Math.max(...ran.map((st) => ms(st.started_at!) + (st.duration_ms ?? 0)));
      return [start, end] as const;
    };
    const events = tasks.flatMap((t) => {
      const [start, end] = busy(t as unknown as { steps: Step[] });
      return [
        [start, 1],
        [end, -1],
      ] as const;
    }).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let now = 0;
    let peak = 0;
    for (const [, d] of events) peak = Math.max(peak, (now += d));
    // More than one worker's slots were busy at once: both workers took part.
    expect(peak).toBeGreaterThan(workers[0]!.config.WORKER_CONCURRENCY);
    expect(peak).toBeLessThanOrEqual(2 * workers[0]!.config.WORKER_CONCURRENCY);
    console.info(`${BURST} concurrent creates: ${elapsed} ms until all succeeded, peak parallelism ${peak}, attempts ${tasks.map((t) => t.attempt).join(",")}`);

    const d0 = Date.now();
    await deleteHosts(ids);
    console.info(`${BURST} concurrent deletes: ${Date.now() - d0} ms`);
    expect(instanceObjects(h.prefix)).toEqual({ containers: [], volumes: [] });
  }, 480_000);
});

describe("a worker killed mid-task (checklist 147)", () => {
  beforeAll(() => buildDist(), 120_000);

  it("SIGKILL during host.create: the job is redelivered, the task succeeds, no duplicate containers", async () => {
    const first = spawnWorker("kill-me");
    await waitUntil("the first worker process to start", 60_000, async () =>
      first.output().includes("worker started") ? true : undefined,
    );
    const { hostId, taskId } = await requestCreate();
    // Kill it once the gateway step has begun (the task is half done).
    const atKill = await waitUntil("start_gateway to begin", 60_000, async () => {
      const t = await getTask(taskId);
      if (["succeeded", "failed", "canceled"].includes(t.status)) throw new Error(`task finished before the kill: ${t.status}`);
      const s = t.steps.find((x) => x.name === "start_gateway");
      return t.status === "running" && s && s.status !== "pending" ? t : undefined;
    });
    first.child.kill("SIGKILL");
    const killedAt = Date.now();
    expect((await first.exited).signal).toBe("SIGKILL");
    const afterKill = await getTask(taskId);
    expect(afterKill.status, "the kill caught the task mid-flight").toBe("running");
    expect(afterKill.steps.find((s) => s.name === "sync_keys")?.status).not.toBe("succeeded");

    const second = spawnWorker("after-kill");
    const t = await waitForTask(h, taskId, 120_000);
    const redelivered = Date.now() - killedAt;
    expect(t.status, `${JSON.stringify(t)}\n${second.output().slice(-3000)}`).toBe("succeeded");
    expect(t.attempt).toBe(2);
    expect(t.steps.map((s: Step) => [s.name, s.status])).toEqual([
      ["check_images", "succeeded"],
      ["prepare_keys", "succeeded"],
      ["prepare_volume", "succeeded"],
      ["start_gateway", "succeeded"],
      ["start_host", "succeeded"],
      ["verify_egress", "succeeded"],
      ["wait_ssh", "succeeded"],
      ["sync_keys", "succeeded"],
    ]);
    // Stalled-job detection: the lock lapses ≤ 30 s after the kill, checks run every 15 s (a job
    // is moved back after two), plus the second boot and the task itself: ~32–47 s seen here.
    expect(redelivered).toBeLessThan(75_000);
    expect((await getHost(hostId))?.status).toBe("running");
    expect(instanceObjects(h.prefix)).toEqual({ containers: [gw(hostId), hc(hostId)].sort(), volumes: [`ccp-home-${hostId}`] });
    const all = docker(["ps", "-a", "--format", "{{.Names}}", "--filter", `label=cloud-cli-proxy.host_id=${hostId}`]);
    expect(all.split("\n").sort()).toEqual([gw(hostId), hc(hostId)].sort());
    expect(await banner(await managementAddress(hostId))).toMatch(/^SSH-2\.0-OpenSSH/);
    const started = await h.database.sql`select 1 from events where task_id = ${taskId} and type = 'task.started'`;
    expect(started).toHaveLength(1);
    const hostStarted = await h.database.sql`select 1 from events where task_id = ${taskId} and type = 'host.started'`;
    expect(hostStarted).toHaveLength(1);
    console.info(
      `SIGKILL at step ${atKill.steps.find((s) => s.status === "running")?.name ?? "?"}; redelivered and finished ${redelivered} ms after the kill`,
    );

    await deleteHosts([hostId]);
    second.child.kill("SIGTERM");
    expect((await second.exited).code).toBe(0);
  }, 240_000);

  it("a gateway left half-made by a killed worker (created, not yet on the management network) is completed", async () => {
    // No worker runs: the create stays pending while we leave the gateway as createGateway would
    // after its first call (container created on the underlay) and before it attached the rest.
    const { hostId, taskId } = await requestCreate();
    const [row] = await h.database.sql<{ short_id: string }[]>`select short_id from hosts where id = ${hostId}`;
    docker([
      "create", "--name", gw(hostId), "--hostname", row!.short_id,
      "--label", "cloud-cli-proxy.managed=true", "--label", "cloud-cli-proxy.role=gateway",
      "--label", `cloud-cli-proxy.host_id=${hostId}`, "--label", `cloud-cli-proxy.instance=${h.prefix}`,
      "--cap-add", "NET_ADMIN", "--cap-drop", "NET_RAW", "--device", "/dev/net/tun",
      "--sysctl", "net.ipv4.conf.all.src_valid_mark=1", "--sysctl", "net.ipv6.conf.all.disable_ipv6=1",
      "--sysctl", "net.ipv6.conf.default.disable_ipv6=1", "--memory", "128m", "--pids-limit", "256",
      "--restart", "no", "--security-opt", "no-new-privileges", "--network", TEST_UNDERLAY_NETWORK,
      "cloud-cli-proxy/gateway:latest",
    ]);
    workers.push(await startTestWorker(h));
    try {
      const t = await waitForTask(h, taskId);
      expect(t.status, JSON.stringify(t)).toBe("succeeded");
      const nets = JSON.parse(docker(["inspect", "-f", "{{json .NetworkSettings.Networks}}", gw(hostId)]));
      expect(Object.keys(nets).sort()).toEqual([TEST_MGMT_NETWORK, TEST_UNDERLAY_NETWORK].sort());
      expect(await banner(await managementAddress(hostId))).toMatch(/^SSH-2\.0-OpenSSH/);
      await deleteHosts([hostId]);
    } finally {
      await stopWorkers();
    }
    expect(instanceObjects(h.prefix)).toEqual({ containers: [], volumes: [] });
  }, 120_000);
});

describe("no worker running (checklist 148) and the sweeper", () => {
  let redis: ReturnType<typeof createRedis> | undefined;
  afterAll(() => redis?.disconnect());

  /** The worker's dependencies without consumers or schedulers: `runSweep` is called by hand. */
  function sweepDeps(staleAfterSeconds: number, aheadMs = 0): WorkerDeps {
    redis ??= createRedis(h.env.REDIS_URL ?? "redis://127.0.0.1:6379", { name: "ccp-test-sweep" });
    const deps = bareWorkerDeps(h, redis, { TASK_STALE_AFTER_SECONDS: String(staleAfterSeconds) });
    // The sweeper's clock moved forward instead of the test sleeping past the limit (STYLE: no fixed sleeps).
    return { ...deps, clock: () => new Date(Date.now() + aheadMs) };
  }

  const made: string[] = [];

  it("a task stays pending without a worker, then fails stale_timeout (the sweeper)", async () => {
    expect(workers).toHaveLength(0);
    const { hostId, taskId } = await requestCreate();
    made.push(hostId);
    // Nothing consumed its job: it is still waiting in the queue (no worker is attached to take it).
    const queued = await h.queues.get("host-ops").getJob(taskId);
    expect(await queued?.getState()).toBe("waiting");
    const t = await getTask(taskId);
    expect(t.status).toBe("pending");
    expect(t.started_at).toBeNull();
    expect(instanceObjects(h.prefix).containers).toEqual([]);

    // A sweep with the normal limit leaves it alone (its job is there, it is young).
    const calm = await runSweep(sweepDeps(600));
    expect(calm).toMatchObject({ requeued: 0, stale: 0 });
    expect((await getTask(taskId)).status).toBe("pending");

    const swept = await runSweep(sweepDeps(2, 5_000));
    expect(swept.stale).toBe(1);
    const failed = await getTask(taskId);
    expect(failed).toMatchObject({ status: "failed", error_code: "stale_timeout" });
    expect(failed.finished_at).not.toBeNull();
    const ev = await h.database.sql<{ metadata: unknown }[]>`select metadata from events where task_id = ${taskId} and type = 'task.failed'`;
    expect(ev).toHaveLength(1);
    // The host whose create died is `failed` (docs/architecture.md#host-status), so the reconciler retries it with backoff.
    expect((await getHost(hostId))?.status).toBe("failed");
  });

  it("a pending task whose job was removed is enqueued again by the sweeper and then completes", async () => {
    const { hostId, taskId } = await requestCreate();
    made.push(hostId);
    const queue = h.queues.get("host-ops");
    const job = await queue.getJob(taskId);
    expect(job, "the API enqueued a job with id = task id").toBeDefined();
    await job!.remove();
    expect(await queue.getJob(taskId)).toBeUndefined();

    const swept = await runSweep(sweepDeps(600));
    expect(swept.requeued).toBe(1);
    const again = await queue.getJob(taskId);
    expect(again?.name).toBe("host.create");
    expect(await again!.getState()).toBe("waiting");
    expect((await getTask(taskId)).status).toBe("pending");

    workers.push(await startTestWorker(h));
    const t = await waitForTask(h, taskId);
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    expect((await getHost(hostId))?.status).toBe("running");
    expect(await banner(await managementAddress(hostId))).toMatch(/^SSH-2\.0-OpenSSH/);

    await deleteHosts(made.splice(0));
    await stopWorkers();
    expect(instanceObjects(h.prefix)).toEqual({ containers: [], volumes: [] });
  }, 120_000);

  it("a running task whose job is gone is enqueued again once its heartbeat is older than the lease, not before (a Redis that restarted empty)", async () => {
    const { hostId, taskId } = await requestCreate();
    made.push(hostId);
    const queue = h.queues.get("host-ops");
    await (await queue.getJob(taskId))!.remove();
    // As a worker killed mid-task leaves it after Redis lost its job: running, heartbeat now.
    await h.database.sql`update tasks set status = 'running', attempt = 1, started_at = now(), heartbeat_at = now() where id = ${taskId}`;

    // Within the lease (15 s by default) the worker may still be alive: left alone.
    expect(await runSweep(sweepDeps(600))).toMatchObject({ requeued: 0, stale: 0 });
    expect(await queue.getJob(taskId)).toBeUndefined();

    // Its heartbeat older than the lease (the sweeper's clock moved on): enqueued again.
    const swept = await runSweep(sweepDeps(600, 20_000));
    expect(swept).toMatchObject({ requeued: 1, stale: 0 });
    expect(await (await queue.getJob(taskId))!.getState()).toBe("waiting");

    workers.push(await startTestWorker(h));
    const t = await waitForTask(h, taskId);
    expect(t, JSON.stringify(t)).toMatchObject({ status: "succeeded", attempt: 2 });
    expect((await getHost(hostId))?.status).toBe("running");

    await deleteHosts(made.splice(0));
    await stopWorkers();
    expect(instanceObjects(h.prefix)).toEqual({ containers: [], volumes: [] });
  }, 120_000);
});
