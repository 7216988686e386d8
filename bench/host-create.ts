/**
 * Host creation latency: `POST /v1/admin/hosts` → sshd banner on the management address, against
 * the floor of the same two containers made and started straight through the Docker API.
 *
 *   npx tsx bench/host-create.ts [N=12]
 *
 * Needs what the docker tests need (Postgres, Redis, a Docker engine with the host and gateway
 * images). Uses a database, a Redis prefix and Docker objects of its own and removes them all.
 * Iterations alternate (product, floor, product, floor …) so background noise hits both alike.
 *
 * What is timed:
 *  - product "banner": from sending the POST (in-process API, in-process worker with its BullMQ
 *    consumers) until `SSH-2.0-…` is read from <gateway management address>:22;
 *  - product "running": from the POST until the task is `succeeded` (what a client polls for;
 *    it includes the pinned-key SSH check and the key sync after the banner);
 *  - floor: home volume + gateway (same settings, networks attached and config uploaded before
 *    start) + host container (same settings, keys uploaded) created and started back to back,
 *    without waiting for the gateway's ready file, until the banner is read. Same adapter calls
 *    as the worker (worker/runtime/docker), no queue, no database, no readiness checks.
 */
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import postgres from "postgres";
import { createApp } from "../api/app.js";
import { buildApiDeps } from "../api/main.js";
import { runMigrations } from "../drizzle/migrate.js";
import { parseApiConfig } from "../shared/config/api.js";
import { loadEnvironment } from "../shared/config/env-file.js";
import { parseWorkerConfig } from "../shared/config/worker.js";
import { createDatabase } from "../shared/db/client.js";
import { createLogger } from "../shared/logger.js";
import { createQueues } from "../shared/queue/queues.js";
import { createRedis, deletePrefixedKeys, waitForRedis } from "../shared/redis.js";
import { seedAdmin } from "../shared/services/auth/seed-admin.js";
import { adminDatabaseUrl, databaseUrlFor } from "../shared/test/db-names.js";
import {
  ensureTestNetworks,
  removeInstanceObjects,
  TEST_MGMT_NETWORK,
  TEST_UNDERLAY_NETWORK,
} from "../shared/test/worker-harness.js";
import { gatewayName } from "../worker/hosts/names.js";
import { startWorker } from "../worker/main.js";
import { createDockerRuntime } from "../worker/runtime/docker/docker-runtime.js";
import { createFloor, waitBanner } from "./lib/floor.js";
import { benchRow, runBench, writeBenchResult } from "./lib/report.js";

const N = Math.max(1, Number(process.argv[2] ?? 12) || 12);
const POLL_MS = 20;
const TIMEOUT_MS = 120_000;
const ADMIN_PASSWORD = "bench-admin-password";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pct(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

function summary(label: string, values: number[]) {
  return `${label.padEnd(34)} p50 ${String(pct(values, 50)).padStart(6)} ms   p95 ${String(pct(values, 95)).padStart(6)} ms   min ${String(Math.min(...values)).padStart(6)}   max ${String(Math.max(...values)).padStart(6)}`;
}

async function main() {
  const base = loadEnvironment();
  const prefix = `bench${randomBytes(4).toString("hex")}`;
  const floorInstance = `${prefix}f`;
  const dbName = `ccp_bench_${process.pid}_${randomBytes(4).toString("hex")}`;
  const admin = postgres(adminDatabaseUrl(base), { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${dbName}"`);
  const dbUrl = databaseUrlFor(base, dbName);
  const env: Record<string, string | undefined> = {
    ...base,
    DATABASE_URL: dbUrl,
    REDIS_PREFIX: prefix,
    ADMIN_USERNAME: "admin",
    ADMIN_PASSWORD,
    ADMIN_JWT_SECRET: randomBytes(32).toString("hex"),
    SECRETS_KEY: `v1:${randomBytes(32).toString("base64")}`,
    SECRETS_KEY_PREVIOUS: "",
    PUBLIC_BASE_URL: "http://bench.example.test:8080",
    TRUST_PROXY_CIDRS: "",
    LOG_LEVEL: "warn",
    MGMT_NETWORK: TEST_MGMT_NETWORK,
    EGRESS_UNDERLAY_NETWORK: TEST_UNDERLAY_NETWORK,
    RECONCILE_INTERVAL_SECONDS: "3600",
    EXPIRY_SCAN_INTERVAL_SECONDS: "3600",
    SWEEP_INTERVAL_SECONDS: "3600",
    CONTAINER_STOP_GRACE_SECONDS: "1",
    WORKER_CONCURRENCY: "4",
    // The cold path: no warm pool (bench/pool-create.ts measures the warm one).
    HOST_POOL_SIZE: "0",
  };
  const quiet = new Writable({ write: (_c, _e, cb) => cb() });
  const logger = createLogger({ level: "warn" }, quiet);
  const database = createDatabase(dbUrl, { max: 10 });
  const redis = createRedis(env.REDIS_URL ?? "redis://127.0.0.1:6379", { name: "ccp-bench" });
  const bull = createRedis(env.REDIS_URL ?? "redis://127.0.0.1:6379", { name: "ccp-bench-queues", forBullmq: true });
  const queues = createQueues(bull, prefix);
  const floorRuntime = createDockerRuntime({ socketPath: base.DOCKER_SOCKET ?? "/var/run/docker.sock", instance: floorInstance });
  let worker: Awaited<ReturnType<typeof startWorker>> | undefined;

  const product = { banner: [] as number[], running: [] as number[] };
  const floor: number[] = [];
  try {
    await waitForRedis(redis);
    await runMigrations(database);
    ensureTestNetworks();
    const apiConfig = parseApiConfig(env);
    const workerConfig = parseWorkerConfig(env);
    await seedAdmin(database.db, logger, { username: "admin", password: ADMIN_PASSWORD, now: new Date() });
    const app = createApp(buildApiDeps(apiConfig, logger, { database, redis, queues }));
    worker = await startWorker(workerConfig, logger, { database });
    const runtime = worker.deps.runtime;

    const request = async (method: string, path: string, token?: string, body?: unknown) => {
      const res = await app.request(
        path,
        {
          method,
          headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { "content-type": "application/json" } : {}) },
          body: body ? JSON.stringify(body) : undefined,
        },
        { incoming: { socket: { remoteAddress: "127.0.0.1" } } },
      );
      const text = await res.text();
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
      return text ? JSON.parse(text) : undefined;
    };
    const token = (await request("POST", "/v1/auth/login", undefined, { username: "admin", password: ADMIN_PASSWORD })).token as string;
    const taskStatus = async (id: string) => (await request("GET", `/v1/admin/tasks/${id}`, token)).task as { status: string; error_code: string | null };
    const waitTask = async (id: string, t0: number) => {
      for (;;) {
        const t = await taskStatus(id);
        if (t.status === "succeeded") return Date.now() - t0;
        if (t.status === "failed" || t.status === "canceled") throw new Error(`task ${id} ${t.status}: ${t.error_code}`);
        if (Date.now() - t0 > TIMEOUT_MS) throw new Error(`task ${id} not done within ${TIMEOUT_MS} ms`);
        await sleep(POLL_MS);
      }
    };

    const runProduct = async (i: number) => {
      const user = await request("POST", "/v1/admin/users", token, { username: `bench${i}${randomBytes(3).toString("hex")}`, password: `pw-${randomBytes(8).toString("hex")}` });
      const t0 = Date.now();
      const res = await request("POST", "/v1/admin/hosts", token, { user_id: user.user.id });
      const hostId = res.host.id as string;
      const banner = await waitBanner(runtime, gatewayName(hostId), t0);
      const running = await waitTask(res.task_id, t0);
      product.banner.push(banner);
      product.running.push(running);
      const del = await request("DELETE", `/v1/admin/hosts/${hostId}`, token);
      await waitTask(del.task_id, Date.now());
      return { banner, running };
    };

    const runFloor = async () => {
      const banner = await createFloor(floorRuntime, floorInstance, workerConfig);
      floor.push(banner);
      return banner;
    };

    // One warm-up of each (image layers and page cache), not counted.
    process.stdout.write("warm-up …\n");
    await runProduct(-1);
    await runFloor();
    product.banner.length = 0;
    product.running.length = 0;
    floor.length = 0;

    for (let i = 0; i < N; i++) {
      const p = await runProduct(i);
      const f = await runFloor();
      process.stdout.write(`#${String(i + 1).padStart(2)}  product banner ${p.banner} ms, running ${p.running} ms   floor banner ${f} ms\n`);
    }

    process.stdout.write(`\nhost create, N=${N} sequential (2 CPUs)\n`);
    process.stdout.write(`${summary("product: POST → sshd banner", product.banner)}\n`);
    process.stdout.write(`${summary("product: POST → task succeeded", product.running)}\n`);
    process.stdout.write(`${summary("floor: create+start → banner", floor)}\n`);
    const r = (p: number) => (pct(product.banner, p) / pct(floor, p)).toFixed(2);
    process.stdout.write(`ratio product/floor (banner): p50 ${r(50)}x   p95 ${r(95)}x\n`);
    // The issue 12 table (bench/run-all.ts). No warm pool here: these are the cold-path targets.
    writeBenchResult("host-create", [
      benchRow({ path: "POST create → sshd banner p50 (cold)", unit: "ms", ours: pct(product.banner, 50), baseline: pct(floor, 50), baselineLabel: "floor", target: { of: "ratio", op: "<=", value: 1.1, text: "p50 ≤ 1.1× floor" } }),
      benchRow({ path: "POST create → sshd banner p95 (cold)", unit: "ms", ours: pct(product.banner, 95), baseline: pct(floor, 95), baselineLabel: "floor" }),
      benchRow({ path: "POST create → task succeeded p50", unit: "ms", ours: pct(product.running, 50), baseline: pct(floor, 50), baselineLabel: "floor", target: { of: "ours", op: "<=", value: 200, text: "p50 ≤ 200 ms (warm pool)" } }),
    ]);
  } finally {
    await worker?.stop().catch(() => {});
    removeInstanceObjects(prefix);
    removeInstanceObjects(floorInstance);
    await deletePrefixedKeys(redis, prefix);
    await queues.close();
    bull.disconnect();
    redis.disconnect();
    await database.close();
    await admin.unsafe(`drop database if exists "${dbName}" with (force)`);
    await admin.end();
  }
}

runBench(main);
