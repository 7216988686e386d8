import { type Job, Worker } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QUEUE_NAMES } from "../../shared/queue/contracts.js";
import { createRedis } from "../../shared/redis.js";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { openSse } from "../../shared/test/sse-client.js";
import { bareWorkerDeps, waitForTask } from "../../shared/test/worker-harness.js";
import { setHostStatus } from "../../worker/hosts/steps.js";
import { runTaskJob, type TaskProcessor } from "../../worker/tasks/runner.js";

/**
 * Live updates are pushed, not only polled (docs/architecture.md#live-updates). The API here polls
 * Postgres once a minute (SSE_POLL_INTERVAL_MS=60000, longer than any wait below), so every event
 * these streams receive after their first poll was delivered because a writer announced its
 * change: without the push the waits time out. The worker path is the real one — BullMQ, the
 * task runner, setHostStatus — with a stand-in for the Docker work that holds until released.
 */
let h: ApiHarness;
let admin: string;
let redis: ReturnType<typeof createRedis>;
let bullConnection: ReturnType<typeof createRedis>;
let worker: Worker;
// The stand-in's work waits on this while a test holds it.
let hold: Promise<void> = Promise.resolve();
let releaseHold: () => void = () => {};

function holdWork(): () => void {
  hold = new Promise<void>((r) => (releaseHold = r));
  return () => releaseHold();
}

beforeAll(async () => {
  h = await createApiHarness({ SSE_POLL_INTERVAL_MS: "60000" });
  admin = await h.adminToken();
  redis = createRedis(h.env.REDIS_URL ?? "redis://127.0.0.1:6379", { name: "ccp-test-push" });
  bullConnection = createRedis(h.env.REDIS_URL ?? "redis://127.0.0.1:6379", { name: "ccp-test-push-bull", forBullmq: true });
  const deps = bareWorkerDeps(h, redis);
  // What a host create does to the rows, without Docker: host `creating`, a step, host `running`.
  const processor: TaskProcessor = {
    plan: () => ["work"],
    async run(ctx) {
      const hostId = ctx.task.hostId!;
      await setHostStatus(deps, hostId, { status: "creating" });
      await ctx.step("work", () => hold);
      await setHostStatus(deps, hostId, { status: "running" });
    },
  };
  worker = new Worker(
    QUEUE_NAMES.hostOps,
    async (job: Job<{ taskId: string }>, token?: string) => runTaskJob(deps, processor, job, token),
    { connection: bullConnection, prefix: h.prefix, concurrency: 4 },
  );
});
afterAll(async () => {
  releaseHold();
  await worker?.close();
  redis?.disconnect();
  bullConnection?.disconnect();
  await h?.close();
});

async function createHostFor(userId: string): Promise<{ hostId: string; taskId: string }> {
  const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: userId } });
  expect(res.status, res.text).toBe(202);
  return { hostId: res.body.host.id, taskId: res.body.task_id };
}

describe("pushed live updates", () => {
  it("deliver a worker's task and host changes at once, to the owner and the admin only", async () => {
    const alice = await h.createUser();
    const bob = await h.createUser();
    const a = await openSse(h.app, "/v1/admin/sse", admin);
    const sa = await openSse(h.app, "/v1/user/sse", alice.token);
    const sb = await openSse(h.app, "/v1/user/sse", bob.token);
    try {
      await Promise.all([a.ready(), sa.ready(), sb.ready()]);
      // Alice's host: the create request, then the worker's claim, step and host status.
      const release = holdWork();
      const created = await createHostFor(alice.id);
      await a.waitFor("the new task", (e) => e.event === "task" && e.data.id === created.taskId);
      await a.waitFor("step running", (e) => e.event === "task" && e.data.id === created.taskId && e.data.steps?.[0]?.status === "running");
      await a.waitFor("host creating", (e) => e.event === "host" && e.data.id === created.hostId && e.data.status === "creating");
      await sa.waitFor("own task running", (e) => e.event === "task" && e.data.id === created.taskId && e.data.status === "running");
      release();
      for (const s of [a, sa]) {
        await s.waitFor("task succeeded", (e) => e.event === "task" && e.data.id === created.taskId && e.data.status === "succeeded");
        await s.waitFor("host running", (e) => e.event === "host" && e.data.id === created.hostId && e.data.status === "running");
      }

      // Bob's own host afterwards: once his stream has its final update, every frame of Alice's
      // (delivered earlier by the same hub, in order) has been read — and must not be there.
      const bobs = await createHostFor(bob.id);
      await sb.waitFor("own task succeeded", (e) => e.event === "task" && e.data.id === bobs.taskId && e.data.status === "succeeded");
      for (const foreign of [alice.id, created.hostId, created.taskId]) {
        expect(sb.raw(), `foreign id ${foreign} in Bob's stream`).not.toContain(foreign);
      }
      for (const e of sa.events) if (e.event === "task" || e.event === "host") expect([created.taskId, created.hostId]).toContain(e.data.id);
    } finally {
      await Promise.all([a.close(), sa.close(), sb.close()]);
    }
  });

  it("still delivers by the interval poll when a notification is lost", async () => {
    // Another API on the same database and Redis, polling every 200 ms; the change below is
    // written the way a writer that failed to publish leaves it: committed, never announced.
    const fallback = await h.withConfig({ SSE_POLL_INTERVAL_MS: "200" });
    const u = await h.createUser();
    const { taskId } = await createHostFor(u.id);
    // The worker finishes the task first: otherwise its last write (progress 100) can land
    // after the unannounced one and replace it before a poll sees it — the CI flake of stop 20.
    await waitForTask(h, taskId);
    const s = await openSse(fallback.app, "/v1/admin/sse", admin);
    try {
      await s.ready();
      await h.database.sql`update tasks set progress_message = 'unannounced', progress_percent = 42 where id = ${taskId}`;
      const e = await s.waitFor("the unannounced change", (x) => x.event === "task" && x.data.id === taskId && x.data.progress_percent === 42);
      expect(e.data.progress_message).toBe("unannounced");
    } finally {
      await s.close();
    }
  });

  it("polls only on the interval when push is turned off (SSE_PUSH=false)", async () => {
    const polled = await h.withConfig({ SSE_PUSH: "false", SSE_POLL_INTERVAL_MS: "200" });
    const u = await h.createUser();
    const s = await openSse(polled.app, "/v1/admin/sse", admin);
    try {
      await s.ready();
      const { taskId } = await createHostFor(u.id);
      await s.waitFor("the new task", (e) => e.event === "task" && e.data.id === taskId);
    } finally {
      await s.close();
    }
  });
});
