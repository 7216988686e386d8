import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseWorkerConfig } from "../../shared/config/worker.js";
import { createLogger } from "../../shared/logger.js";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { memoryWorkerEnv, waitForTask } from "../../shared/test/worker-harness.js";
import { insertHostRow } from "../../shared/test/rows.js";
import { hostContainerName } from "../../worker/hosts/names.js";
import { startWorker } from "../../worker/main.js";
import { MemoryRuntime } from "../../worker/runtime/memory/memory-runtime.js";
import { waitUntil } from "../../shared/test/processes.js";

/**
 * An engine that stops answering (docs/engines.md#health), through the real worker: heartbeats,
 * the `system.engines` scheduler, the reconciler and the API, on the in-memory runtime so the
 * engine can be taken down and brought back on cue. Its hosts turn `unreachable` (not deleted,
 * nothing recreated), the API keeps answering, and when the engine is back they return to their
 * real state unaided. test/docker/engines.test.ts does the same with a real dockerd stopped.
 */
let h: ApiHarness;
let admin: string;
let stopWorker: () => Promise<void>;
const mem = new MemoryRuntime();

beforeAll(async () => {
  h = await createApiHarness();
  admin = await h.adminToken();
  const config = parseWorkerConfig(memoryWorkerEnv(h, { HOST_POOL_SIZE: "0" }));
  mem.addImage(config.HOST_IMAGE);
  mem.addImage(config.GATEWAY_IMAGE);
  const logger = createLogger({ level: "warn" }, new Writable({ write: (_c, _e, cb) => cb() }));
  const w = await startWorker(config, logger, { database: h.database, runtime: mem, sshProbe: (o) => mem.sshProbe(o) });
  stopWorker = w.stop;
});
afterAll(async () => {
  mem.setEngineDown(false);
  await stopWorker?.();
  await h?.close();
});

/** The project's poll-with-deadline (shared/test/processes.ts) for probes that answer false or null while not yet. */
const until = <T>(what: string, fn: () => Promise<T | undefined | null | false>, ms = 30_000): Promise<T> =>
  waitUntil(what, ms, async () => (await fn()) || undefined);
const statusOf = async (hostId: string) => (await h.database.sql<{ status: string }[]>`select status from hosts where id = ${hostId}`)[0]?.status;
const eventsOf = async (hostId: string, type: string) =>
  h.database.sql<{ metadata: Record<string, unknown> }[]>`select metadata from events where host_id = ${hostId} and type = ${type}`;

async function createRunningHost(): Promise<string> {
  const u = await h.createUser();
  const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } });
  expect(res.status, res.text).toBe(202);
  const t = await waitForTask(h, res.body.task_id, 30_000);
  expect(t.status, JSON.stringify(t)).toBe("succeeded");
  return res.body.host.id as string;
}

/** Down: Docker stops answering and was last seen long ago (the heartbeat no longer refreshes it). */
async function engineDown() {
  mem.setEngineDown(true);
  // The heartbeat in flight may still record a success: wait until a beat has recorded a failure.
  const before = (await h.database.sql<{ at: Date }[]>`select last_heartbeat_at as at from engines where id = 'default'`)[0]!.at;
  await until("a heartbeat with Docker down", async () => {
    const [e] = await h.database.sql<{ hb: Date; seen: Date }[]>`select last_heartbeat_at as hb, last_seen_at as seen from engines where id = 'default'`;
    return e!.hb > before && e!.hb > e!.seen;
  });
  await h.database.sql`update engines set last_seen_at = now() - interval '1 hour' where id = 'default'`;
}

describe("an engine that stops answering", () => {
  it("its hosts turn unreachable, the API keeps answering, and they come back unaided", async () => {
    const a = await createRunningHost();
    const b = await createRunningHost();
    const containersBefore = [...mem.containers.keys()].sort();
    // Rows a dead engine leaves alone: a create not yet run (pending) and a delete in progress.
    const pending = await insertHostRow(h.database.sql, { status: "pending" });
    const deleting = await insertHostRow(h.database.sql, { status: "deleting", desiredState: "deleted" });

    await engineDown();
    await until("both hosts unreachable", async () => (await statusOf(a)) === "unreachable" && (await statusOf(b)) === "unreachable");
    expect((await eventsOf(a, "host.unreachable"))[0]?.metadata).toMatchObject({ engine_id: "default" });
    // Marked in the same statement as a and b: had they been eligible, they would be unreachable now.
    expect(await statusOf(pending.id)).toBe("pending");
    expect(await statusOf(deleting.id)).toBe("deleting");
    await h.database.sql`delete from hosts where id in ${h.database.sql([pending.id, deleting.id])}`;

    // The API answers as before: the host shows its state, the list too.
    const detail = await h.request("GET", `/v1/admin/hosts/${a}`, { token: admin });
    expect(detail.status, detail.text).toBe(200);
    expect(detail.body.host.status).toBe("unreachable");
    const list = await h.request("GET", "/v1/admin/hosts", { token: admin });
    expect(list.status).toBe(200);

    // While the engine was away, one host's container stopped.
    mem.containers.get(hostContainerName(b))!.running = false;
    mem.setEngineDown(false);

    // Nothing was deleted or recreated: the same containers; a's status is Docker's (running), b is
    // started again by the reconciler's repair (its desired state is running).
    await until("a running again", async () => (await statusOf(a)) === "running");
    expect((await eventsOf(a, "host.reachable"))[0]?.metadata).toMatchObject({ engine_id: "default", status: "running" });
    const back = await until("b's reachable event", async () => (await eventsOf(b, "host.reachable"))[0]);
    expect(back.metadata).toMatchObject({ status: "stopped" });
    await until("b running again", async () => (await statusOf(b)) === "running" && mem.containers.get(hostContainerName(b))?.running);
    expect([...mem.containers.keys()].sort()).toEqual(containersBefore);
  });

  it("a task asked while its engine is down waits for it (no attempt used, not failed) and runs when it is back", async () => {
    const a = await createRunningHost();
    await engineDown();
    const res = await h.request("POST", `/v1/admin/hosts/${a}/stop`, { token: admin });
    expect(res.status, res.text).toBe(202);
    const taskId = res.body.task_id as string;
    // The worker's host operations are paused while its Docker does not answer: the stop waits in
    // the queue (or, taken just before the pause, is handed back to wait) and is never failed.
    const job = () => h.queues.get("host-ops").getJob(taskId);
    await until("the stop waiting for the engine", async () => {
      const state = await (await job())?.getState();
      return state === "waiting" || state === "delayed";
    });
    const [t] = await h.database.sql<{ status: string; attempt: number }[]>`select status, attempt from tasks where id = ${taskId}`;
    expect(["pending", "running"]).toContain(t!.status);
    expect(t!.attempt).toBeLessThanOrEqual(1);
    expect((await job())!.attemptsMade).toBe(0);

    mem.setEngineDown(false);
    const done = await waitForTask(h, taskId, 30_000);
    expect(done.status, JSON.stringify(done)).toBe("succeeded");
    await until("a stopped", async () => (await statusOf(a)) === "stopped");
  });
});
