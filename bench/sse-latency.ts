/**
 * Task change → SSE event at the client (issue 12; docs/architecture.md#live-updates): target p95 ≤ 50 ms.
 *
 *   npx tsx bench/sse-latency.ts [--changes 200] [--parallel 4] [--poll-ms 1000]
 *
 * Rows only, no containers: a database of its own (created, migrated, dropped at the end) and a
 * Redis prefix of its own. Two APIs run in this process on that database and Redis — the pushed
 * one (SSE_PUSH=true) and the baseline, the poll-only hub (SSE_PUSH=false) — both with the same
 * SSE_POLL_INTERVAL_MS, each with an admin stream read through app.request like the web UI reads it.
 *
 * The changes are made the way the worker makes them, through the same code: BullMQ delivers
 * `host.start` jobs to the real task runner (worker/tasks/runner.ts), whose stand-in processor
 * runs steps that touch nothing but the task row. A step's `running` state is committed by the
 * runner before the step's body starts; the body takes that moment as t0 (the writer has the
 * commit acknowledged — the commit itself is a fraction of a millisecond earlier) and waits until
 * both streams have shown the step running, pauses for a random part of the poll interval (so
 * that changes do not line up with the baseline's polls), then lets the runner go on. Latency = the event's
 * arrival at the client − t0, for both streams, for every change. `--parallel` tasks (on as many
 * hosts) run at once, so the poll-only baseline also sees several changes per poll.
 */
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { parseArgs } from "node:util";
import { type Job, Worker } from "bullmq";
import postgres from "postgres";
import { createApp } from "../api/app.js";
import { buildApiDeps } from "../api/main.js";
import { runMigrations } from "../drizzle/migrate.js";
import { parseApiConfig } from "../shared/config/api.js";
import { loadEnvironment } from "../shared/config/env-file.js";
import { createDatabase } from "../shared/db/client.js";
import { createLogger } from "../shared/logger.js";
import { QUEUE_NAMES } from "../shared/queue/contracts.js";
import { createQueues, enqueueTask } from "../shared/queue/queues.js";
import { createRedis, deletePrefixedKeys, waitForRedis } from "../shared/redis.js";
import { seedAdmin } from "../shared/services/auth/seed-admin.js";
import type { ApiHarness } from "../shared/test/api-harness.js";
import { adminDatabaseUrl, databaseUrlFor } from "../shared/test/db-names.js";
import { insertHostRow, insertTaskRow } from "../shared/test/rows.js";
import { openSse, type SseClient, type SseEvent } from "../shared/test/sse-client.js";
import { bareWorkerDeps } from "../shared/test/worker-harness.js";
import { runTaskJob, type TaskProcessor } from "../worker/tasks/runner.js";
import { benchQuick, benchRow, type BenchRow, writeBenchResult } from "./lib/report.js";
import { median, percentile } from "./lib/stack.js";

const { values } = parseArgs({
  options: {
    changes: { type: "string", default: benchQuick() ? "40" : "200" },
    parallel: { type: "string", default: "4" },
    "poll-ms": { type: "string", default: "1000" },
  },
});
const PARALLEL = Math.max(1, Number(values.parallel));
const STEPS = Math.max(1, Math.ceil(Number(values.changes) / PARALLEL));
const POLL_MS = Number(values["poll-ms"]);
const TARGET_P95_MS = 50;
/** A change not seen by a stream within this long fails the bench (the fallback poll is far shorter). */
const ARRIVAL_TIMEOUT_MS = 30_000;

async function main() {
  const base = loadEnvironment();
  const prefix = `bench${randomBytes(4).toString("hex")}`;
  const dbName = `ccp_bench_${process.pid}_${randomBytes(4).toString("hex")}`;
  const adminPassword = `bench-admin-${randomBytes(6).toString("hex")}`;
  const redisUrl = base.REDIS_URL ?? "redis://127.0.0.1:6379";
  const admin = postgres(adminDatabaseUrl(base), { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${dbName}"`);
  const dbUrl = databaseUrlFor(base, dbName);
  const database = createDatabase(dbUrl, { max: 8 });
  const redis = createRedis(redisUrl, { name: "ccp-bench-sse" });
  const bull = createRedis(redisUrl, { name: "ccp-bench-sse-bull", forBullmq: true });
  const workerRedis = createRedis(redisUrl, { name: "ccp-bench-sse-worker" });
  const consumer = createRedis(redisUrl, { name: "ccp-bench-sse-consumer", forBullmq: true });
  const queues = createQueues(bull, prefix);
  const clients: SseClient[] = [];
  let worker: Worker | undefined;
  let cleaned: Promise<void> | undefined;
  const cleanup = () =>
    (cleaned ??= (async () => {
      await Promise.all(clients.map((c) => c.close()));
      await worker?.close().catch(() => {});
      await queues.close().catch(() => {});
      await deletePrefixedKeys(redis, prefix).catch(() => {});
      for (const r of [redis, bull, workerRedis, consumer]) r.disconnect();
      await database.close().catch(() => {});
      await admin.unsafe(`drop database if exists "${dbName}" with (force)`).catch(() => {});
      await admin.end().catch(() => {});
    })());
  const onSignal = () => void cleanup().then(() => process.exit(130));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  try {
    await runMigrations(database);
    await waitForRedis(redis);
    const quiet = createLogger({ level: "warn" }, new Writable({ write: (_c, _e, cb) => cb() }));
    const env = {
      ...base,
      DATABASE_URL: dbUrl,
      REDIS_PREFIX: prefix,
      ADMIN_USERNAME: "admin",
      ADMIN_PASSWORD: adminPassword,
      PUBLIC_BASE_URL: "http://127.0.0.1:8080",
      SSE_POLL_INTERVAL_MS: String(POLL_MS),
    };
    const apiFor = (push: boolean) => {
      const config = parseApiConfig({ ...env, SSE_PUSH: String(push) });
      return createApp(buildApiDeps(config, quiet, { database, redis, queues, ui: null }));
    };
    const pushed = apiFor(true);
    const polled = apiFor(false);
    await seedAdmin(database.db, quiet, { username: "admin", password: adminPassword, now: new Date() });
    const login = await pushed.request(
      "/v1/auth/login",
      { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ username: "admin", password: adminPassword }) },
      { incoming: { socket: { remoteAddress: "127.0.0.1" } } },
    );
    if (login.status !== 200) throw new Error(`admin login: ${login.status} ${await login.text()}`);
    const token = ((await login.json()) as { token: string }).token;

    const streams = { push: await openSse(pushed, "/v1/admin/sse", token), poll: await openSse(polled, "/v1/admin/sse", token) };
    clients.push(streams.push, streams.poll);
    await Promise.all([streams.push.ready(), streams.poll.ready()]);

    // The worker side: the real runner on the bench's queues, database and Redis prefix (the
    // worker harness only reads env, database, queues and prefix from the harness it is given).
    const deps = bareWorkerDeps({ env, database, queues, prefix } as unknown as ApiHarness, workerRedis);
    const latency = { push: [] as number[], poll: [] as number[] };
    const shows = (taskId: string, step: number) => (e: SseEvent) =>
      e.event === "task" && e.data.id === taskId && e.data.steps?.[step]?.status === "running";
    const processor: TaskProcessor = {
      plan: () => Array.from({ length: STEPS }, (_, i) => `change_${i}`),
      async run(ctx) {
        for (let i = 0; i < STEPS; i++) {
          await ctx.step(`change_${i}`, async () => {
            const t0 = performance.now();
            const [p, q] = await Promise.all([
              streams.push.waitFor(`push: ${ctx.task.id} step ${i}`, shows(ctx.task.id, i), ARRIVAL_TIMEOUT_MS),
              streams.poll.waitFor(`poll: ${ctx.task.id} step ${i}`, shows(ctx.task.id, i), ARRIVAL_TIMEOUT_MS),
            ]);
            // An event can only precede t0 by the moment between the commit and its acknowledgement.
            latency.push.push(Math.max(0, p.at - t0));
            latency.poll.push(Math.max(0, q.at - t0));
            // The next change at a random moment of the poll interval: without this pause every
            // change would commit just after the poll that showed the previous one, and the
            // baseline would measure a full interval instead of a change's usual wait.
            await new Promise((r) => setTimeout(r, Math.random() * POLL_MS));
          });
        }
      },
    };
    worker = new Worker(
      QUEUE_NAMES.hostOps,
      async (job: Job<{ taskId: string }>, t?: string) => runTaskJob(deps, processor, job, t),
      { connection: consumer, prefix, concurrency: PARALLEL },
    );

    const taskIds: string[] = [];
    for (let i = 0; i < PARALLEL; i++) {
      const host = await insertHostRow(database.sql, { status: "running" });
      taskIds.push(await insertTaskRow(database.sql, { kind: "host.start", hostId: host.id }));
    }
    const t0 = performance.now();
    for (const id of taskIds) await enqueueTask(queues, { id, kind: "host.start", engineId: null });
    for (const id of taskIds) {
      await streams.push.waitFor(`task ${id} to end`, (e) => e.event === "task" && e.data.id === id && e.data.status !== "pending" && e.data.status !== "running", 10 * 60_000);
    }
    const seconds = (performance.now() - t0) / 1000;
    const failed = streams.push.events.filter((e) => e.event === "task" && e.data.status === "failed");
    if (failed.length) throw new Error(`tasks failed: ${JSON.stringify(failed.map((e) => e.data.error_message))}`);

    const n = latency.push.length;
    const fmt = (xs: number[], p: number) => percentile(xs, p).toFixed(2).padStart(8);
    console.log(`task change → SSE event at the client: ${n} changes (${PARALLEL} tasks at once × ${STEPS} steps) in ${seconds.toFixed(1)} s`);
    console.log(`  SSE_POLL_INTERVAL_MS=${POLL_MS} for both; in-process API, worker runner and client (one event loop)`);
    for (const [label, xs] of [["pushed (SSE_PUSH=true)", latency.push], ["poll only (SSE_PUSH=false)", latency.poll]] as const) {
      console.log(`  ${label.padEnd(28)} p50 ${fmt(xs, 50)}  p95 ${fmt(xs, 95)}  p99 ${fmt(xs, 99)}  max ${fmt(xs, 100)} ms`);
    }
    const rows: BenchRow[] = [50, 95, 99].map((p) =>
      benchRow({
        path: `task change → SSE event p${p}`,
        unit: "ms",
        ours: percentile(latency.push, p),
        baseline: percentile(latency.poll, p),
        baselineLabel: "poll-only hub",
        ...(p === 95 ? { target: { of: "ours", op: "<=", value: TARGET_P95_MS, text: `p95 ≤ ${TARGET_P95_MS} ms` } as const } : {}),
      }),
    );
    const p95 = rows.find((r) => r.target)!;
    console.log(`\ntarget: p95 ≤ ${TARGET_P95_MS} ms → ${p95.met ? "met" : "NOT met"} (median ${median(latency.push).toFixed(2)} ms)`);
    writeBenchResult("sse-latency", rows);
  } finally {
    await cleanup();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
