import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import type { Job } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseWorkerConfig } from "../../shared/config/worker.js";
import { createLogger } from "../../shared/logger.js";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { waitForTask } from "../../shared/test/worker-harness.js";
import type { WorkerDeps } from "../../worker/deps.js";
import { homeVolumeName, hostContainerName } from "../../worker/hosts/names.js";
import { startWorker } from "../../worker/main.js";
import { buildRegistry } from "../../worker/registry.js";
import { MemoryRuntime } from "../../worker/runtime/memory/memory-runtime.js";

/**
 * One id follows an operation from HTTP to the engine (README "Observability"): the request's
 * X-Request-Id is recorded on the task it creates, and every line the worker logs for that task
 * carries it — also the lines that flow code writes through the process logger, which no one hands
 * a child logger (shared/log-context.ts). A scheduler run gets an id of its own, recorded the same
 * way. The real API, queues, runner and host flows, on the in-memory Runtime (no Docker).
 *
 * The line from flow code used here: prepareVolume (worker/hosts/steps.ts) warns through
 * `deps.logger` when a host's home is a plain volume from before the disk cap; the tests turn a
 * home into one by dropping its bind options in the in-memory engine.
 */
let h: ApiHarness;
let admin: string;
let deps: WorkerDeps;
let stopWorker: () => Promise<void>;
const mem = new MemoryRuntime();
const workerRaw: string[] = [];
const LEGACY_HOME = "home volume predates the disk cap: kept as it is, uncapped";
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

beforeAll(async () => {
  h = await createApiHarness();
  admin = await h.adminToken();
  const config = parseWorkerConfig({
    ...h.env,
    // Nothing may reach a real engine: the socket does not exist.
    DOCKER_SOCKET: "/nonexistent/ccp-memory-runtime/docker.sock",
    MGMT_NETWORK: "ccp-mem-mgmt",
    EGRESS_UNDERLAY_NETWORK: "ccp-mem-underlay",
    EGRESS_UNBOUND_POLICY: "direct",
    EGRESS_REQUIRED: "false",
    HEARTBEAT_INTERVAL_SECONDS: "1",
    RECONCILE_INTERVAL_SECONDS: "3600",
    EXPIRY_SCAN_INTERVAL_SECONDS: "3600",
    SWEEP_INTERVAL_SECONDS: "3600",
    CONTAINER_STOP_GRACE_SECONDS: "1",
    SSH_READY_TIMEOUT_SECONDS: "5",
    HOST_DISK_LIMIT_MB: "1024",
    WORKER_CONCURRENCY: "2",
  });
  mem.addImage(config.HOST_IMAGE);
  mem.addImage(config.GATEWAY_IMAGE);
  const sink = new Writable({
    write(chunk, _e, cb) {
      workerRaw.push(...String(chunk).split("\n").filter(Boolean));
      cb();
    },
  });
  const w = await startWorker(config, createLogger({ level: "debug" }, sink), { database: h.database, runtime: mem, sshProbe: mem.sshProbe });
  deps = w.deps;
  stopWorker = w.stop;
});
afterAll(async () => {
  await stopWorker?.();
  await h?.close();
});

const parse = (raw: string[]) =>
  raw.flatMap((l) => l.split("\n")).filter(Boolean).map((l) => ({ raw: l, line: JSON.parse(l) as Record<string, unknown> }));
const workerLinesOf = (taskId: string) => parse(workerRaw).filter((l) => l.line.task_id === taskId);
const requestIdOf = async (taskId: string) => {
  const [row] = await h.database.sql<{ request_id: string | null }[]>`select request_id from tasks where id = ${taskId}`;
  return row?.request_id;
};

async function createRunningHost(): Promise<string> {
  const u = await h.createUser();
  const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } });
  expect(res.status, res.text).toBe(202);
  const t = await waitForTask(h, res.body.task_id as string, 30_000);
  expect(t.status, JSON.stringify(t)).toBe("succeeded");
  return res.body.host.id as string;
}

/** The host's home becomes a plain volume, as one made before the disk cap (the data stays). */
function makeHomeLegacy(hostId: string): void {
  const vol = mem.volumes.get(homeVolumeName(hostId));
  expect(vol).toBeDefined();
  vol!.options = {};
}

/** The worker's lines for a task all carry the id, once each, and include flow code's line. */
function expectTaskLinesCarry(taskId: string, requestId: string, hostId: string, kind: string): void {
  const lines = workerLinesOf(taskId);
  const all = workerRaw.join("\n");
  const legacy = lines.filter((l) => l.line.msg === LEGACY_HOME);
  expect(legacy, all).toHaveLength(1);
  expect(legacy[0]!.line).toMatchObject({ hostId, host_id: hostId, request_id: requestId });
  for (const { raw, line } of lines) {
    expect(line, raw).toMatchObject({ request_id: requestId, kind, host_id: hostId });
    expect(raw.split('"request_id":').length - 1, raw).toBe(1);
    expect(raw.split('"task_id":').length - 1, raw).toBe(1);
  }
}

describe("one request id from HTTP to the engine", () => {
  it("an X-Request-Id is recorded on the task and carried by every worker line of it, flow code's included", async () => {
    const hostId = await createRunningHost();
    const stop = await h.request("POST", `/v1/admin/hosts/${hostId}/stop`, { token: admin });
    expect(stop.status, stop.text).toBe(202);
    expect((await waitForTask(h, stop.body.task_id as string, 30_000)).status).toBe("succeeded");
    makeHomeLegacy(hostId);

    const id = `trace-${randomBytes(8).toString("hex")}`;
    const apiFrom = h.logs.length;
    const res = await h.request("POST", `/v1/admin/hosts/${hostId}/start`, { token: admin, headers: { "x-request-id": id } });
    expect(res.status, res.text).toBe(202);
    expect(res.headers.get("x-request-id")).toBe(id);
    const taskId = res.body.task_id as string;
    const apiLines = parse(h.logs.slice(apiFrom));
    expect(apiLines.some((l) => l.line.msg === "request"), h.logs.join("")).toBe(true);
    for (const { raw, line } of apiLines) {
      expect(line.request_id, raw).toBe(id);
      expect(raw.split('"request_id":').length - 1, raw).toBe(1);
    }
    expect(await requestIdOf(taskId)).toBe(id);

    const t = await waitForTask(h, taskId, 30_000);
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    expect(t.request_id).toBe(id);
    expectTaskLinesCarry(taskId, id, hostId, "host.start");
    // And the id marks nothing else: every worker line with it belongs to this task.
    for (const { raw, line } of parse(workerRaw)) if (line.request_id === id) expect(line.task_id, raw).toBe(taskId);
  });

  it("a scheduler run has an id of its own: on its task row, on the repair it creates and on the repair's worker lines", async () => {
    const hostId = await createRunningHost();
    makeHomeLegacy(hostId);
    mem.crash(hostContainerName(hostId)); // drift: the reconciler repairs it

    const reconcile = buildRegistry(deps).get("system.reconcile")!;
    await reconcile({ name: "system.reconcile", data: {} } as Job, undefined);

    const [run] = await h.database.sql<{ request_id: string | null; result: { repairs: number } }[]>`
      select request_id, result from tasks where kind = 'system.reconcile' order by created_at desc limit 1`;
    expect(run?.result.repairs).toBeGreaterThanOrEqual(1);
    expect(run?.request_id).toMatch(UUID_RE);
    const runId = run!.request_id!;
    const repairs = await h.database.sql<{ id: string; request_id: string | null; requested_by: string }[]>`
      select id, request_id, requested_by from tasks where host_id = ${hostId} and kind = 'host.ensure-running'`;
    expect(repairs.map((r) => [r.request_id, r.requested_by])).toEqual([[runId, "system:reconcile"]]);

    const t = await waitForTask(h, repairs[0]!.id, 30_000);
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    expect(t.request_id).toBe(runId);
    expectTaskLinesCarry(repairs[0]!.id, runId, hostId, "host.ensure-running");
  });
});
