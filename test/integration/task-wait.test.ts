import { type Job, Worker } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QUEUE_NAMES } from "../../shared/queue/contracts.js";
import { enqueueTask } from "../../shared/queue/queues.js";
import { createRedis } from "../../shared/redis.js";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { waitUntil } from "../../shared/test/processes.js";
import { insertHostRow, insertTaskRow } from "../../shared/test/rows.js";
import { bareWorkerDeps } from "../../shared/test/worker-harness.js";
import { runTaskJob, type TaskProcessor } from "../../worker/tasks/runner.js";

/**
 * Jobs waiting on a busy host (issue 10 §2): they are parked, not re-run every second, and the
 * task ahead of them hands over the host when it ends. Real BullMQ, Redis and Postgres run the
 * real task runner; only the task's work is a stand-in that holds the host until the test lets go
 * (the Docker steps themselves are covered by the docker suites).
 *
 * The safety-net recheck is set to 10 minutes, so a task that runs within this test's deadlines
 * was woken, not rechecked.
 */
const RECHECK_SECONDS = 600;

let h: ApiHarness;
let admin: string;
let redis: ReturnType<typeof createRedis>;
let bullConnection: ReturnType<typeof createRedis>;
let worker: Worker;
const runs = new Map<string, number>();
const finished: string[] = [];
const gates = new Map<string, { held: Promise<void>; release: () => void }>();
const started = new Set<string>();

/** Make the task's work wait until the returned function is called. */
function holdUntilReleased(taskId: string): () => void {
  let release!: () => void;
  gates.set(taskId, { held: new Promise<void>((r) => (release = r)), release: () => release() });
  return () => release();
}

const processor: TaskProcessor = {
  plan: () => ["work"],
  async run(ctx) {
    await ctx.step("work", async () => {
      started.add(ctx.task.id);
      await gates.get(ctx.task.id)?.held;
    });
    finished.push(ctx.task.id);
  },
};

beforeAll(async () => {
  h = await createApiHarness();
  admin = await h.adminToken();
  redis = createRedis(h.env.REDIS_URL ?? "redis://127.0.0.1:6379", { name: "ccp-test-wait" });
  bullConnection = createRedis(h.env.REDIS_URL ?? "redis://127.0.0.1:6379", { name: "ccp-test-wait-bull", forBullmq: true });
  // The stand-in processor never touches Docker.
  const deps = bareWorkerDeps(h, redis, { TASK_WAIT_RECHECK_SECONDS: String(RECHECK_SECONDS) });
  worker = new Worker(
    QUEUE_NAMES.hostOps,
    async (job: Job<{ taskId: string }>, token?: string) => {
      runs.set(job.data.taskId, (runs.get(job.data.taskId) ?? 0) + 1);
      await runTaskJob(deps, processor, job, token);
    },
    { connection: bullConnection, prefix: h.prefix, concurrency: 4 },
  );
});
afterAll(async () => {
  for (const g of gates.values()) g.release();
  await worker?.close();
  redis?.disconnect();
  bullConnection?.disconnect();
  await h?.close();
});

/** When a delayed job is due (BullMQ keeps `timestamp * 0x1000 + counter` as its score). */
async function dueAt(taskId: string): Promise<number | null> {
  const score = await redis.zscore(`${h.prefix}:${QUEUE_NAMES.hostOps}:delayed`, taskId);
  return score === null ? null : Math.floor(Number(score) / 0x1000);
}

async function jobState(taskId: string) {
  const job = await h.queues.get(QUEUE_NAMES.hostOps).getJob(taskId);
  return job ? job.getState() : "missing";
}

async function taskStatus(id: string) {
  const [row] = await h.database.sql<{ status: string }[]>`select status from tasks where id = ${id}`;
  return row!.status;
}

describe("a job waiting on a busy host", () => {
  it("is parked until the task ahead ends, then runs at once, in order", async () => {
    const host = await insertHostRow(h.database.sql, { status: "running" });
    const first = await insertTaskRow(h.database.sql, { kind: "host.start", hostId: host.id });
    const second = await insertTaskRow(h.database.sql, { kind: "host.stop", hostId: host.id });
    const third = await insertTaskRow(h.database.sql, { kind: "host.start", hostId: host.id });
    const release = holdUntilReleased(first);
    await enqueueTask(h.queues, { id: first, kind: "host.start", engineId: null });
    await waitUntil("the first task to start", 30_000, async () => (started.has(first)) || undefined);
    await enqueueTask(h.queues, { id: second, kind: "host.stop", engineId: null });
    await enqueueTask(h.queues, { id: third, kind: "host.start", engineId: null });
    await waitUntil("both to park", 30_000, async () => ((await jobState(second)) === "delayed" && (await jobState(third)) === "delayed") || undefined);

    // Parked for the safety-net interval, not for a second: nothing re-reads Postgres meanwhile.
    const now = Date.now();
    for (const id of [second, third]) {
      const due = await dueAt(id);
      expect(due, id).not.toBeNull();
      expect(due! - now).toBeGreaterThan((RECHECK_SECONDS - 60) * 1000);
    }
    expect([runs.get(second), runs.get(third)], "runs before the release").toEqual([1, 1]);

    release();
    await waitUntil("the queue to drain", 30_000, async () => ((await taskStatus(third)) === "succeeded") || undefined);
    expect(finished.filter((id) => [first, second, third].includes(id))).toEqual([first, second, third]);
    // Each waiting job ran twice: once to park, once when woken.
    expect([runs.get(second), runs.get(third)], "runs after the release").toEqual([2, 2]);
  });

  it("canceling the pending task ahead (API) wakes the next one (and 'ahead' holds within a millisecond)", async () => {
    const host = await insertHostRow(h.database.sql, { status: "running" });
    // A pending task whose job was lost (no enqueue): the next one parks behind it.
    const orphan = await insertTaskRow(h.database.sql, { kind: "host.start", hostId: host.id });
    const next = await insertTaskRow(h.database.sql, { kind: "host.stop", hostId: host.id });
    // Both within one millisecond, 800 µs apart: Postgres keeps the order, a JS Date would not.
    await h.database.sql`update tasks set created_at = '2026-01-01T00:00:00.000100Z' where id = ${orphan}`;
    await h.database.sql`update tasks set created_at = '2026-01-01T00:00:00.000900Z' where id = ${next}`;
    await enqueueTask(h.queues, { id: next, kind: "host.stop", engineId: null });
    let seen = "";
    await waitUntil("the job to park", 30_000, async () => {
      seen = `${await jobState(next)} runs=${runs.get(next) ?? 0} task=${await taskStatus(next)}`;
      return seen.startsWith("delayed") || undefined;
    }).catch((err: Error) => {
      throw new Error(`${err.message} (last seen: ${seen})`);
    });
    const res = await h.request("POST", `/v1/admin/tasks/${orphan}/cancel`, { token: admin });
    expect(res.status, res.text).toBe(200);
    await waitUntil("the woken task to run", 30_000, async () => ((await taskStatus(next)) === "succeeded") || undefined);
    expect(runs.get(next)).toBe(2);
  });
});
