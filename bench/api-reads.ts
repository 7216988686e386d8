/**
 * API reads (issue 12): `GET /v1/admin/hosts?limit=200` with 200 hosts and a user's
 * `GET /v1/user/hosts/{id}`, each at a fixed 1,000 req/s; target p99 ≤ 15 ms.
 *
 *   npx tsx bench/api-reads.ts [--seconds 10] [--warmup 3] [--rate 1000] [--connections 16]
 *
 * Rows only, no containers: a database of its own (created, migrated, dropped at the end), 200
 * host rows seeded straight into it (shared/test/rows.ts; one of them owned by a user who logs in
 * through the API), its own Redis prefix. The API runs as its own process (`main.ts api`, like
 * production, at the .env's LOG_LEVEL with its output discarded) on a loopback port; the load
 * generator (bench/lib/load.ts: open loop, latency from each request's due time) runs here.
 *
 * Baseline, same run: a bare Node http server in a process of its own answering a constant JSON
 * body of exactly the size of the API's answer, at the same rate over the same number of
 * connections — what HTTP and the JSON bytes cost on this machine, nothing of the API. The API's
 * own `GET /healthz` (a `select 1`, a Redis PING and the heartbeat read) is printed too.
 * Order per path: bare warm-up, API warm-up, then bare and API measured back to back.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import postgres from "postgres";
import { runMigrations } from "../drizzle/migrate.js";
import { loadEnvironment } from "../shared/config/env-file.js";
import { createDatabase } from "../shared/db/client.js";
import { projectRoot } from "../shared/paths.js";
import { createRedis, deletePrefixedKeys } from "../shared/redis.js";
import { adminDatabaseUrl, databaseUrlFor } from "../shared/test/db-names.js";
import { freePort, waitUntil } from "../shared/test/processes.js";
import { insertHostRow } from "../shared/test/rows.js";
import { runFixedRate, type LoadResult } from "./lib/load.js";
import { benchQuick, benchRow, type BenchRow, writeBenchResult } from "./lib/report.js";
import { percentile } from "./lib/stack.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: benchQuick() ? "2" : "10" },
    warmup: { type: "string", default: benchQuick() ? "1" : "3" },
    rate: { type: "string", default: "1000" },
    connections: { type: "string", default: "16" },
    hosts: { type: "string", default: "200" },
  },
});
const SECONDS = Number(values.seconds);
const WARMUP = Number(values.warmup);
const RATE = Number(values.rate);
const CONNECTIONS = Number(values.connections);
const HOSTS = Number(values.hosts);
const TARGET_P99_MS = 15;

/** A process that answers every request with the same bytes (the baseline server). */
const BARE_SERVER = `
const http = require("node:http");
const body = Buffer.alloc(Number(process.env.BODY_BYTES), 0x20);
body[0] = 0x7b; body[body.length - 1] = 0x7d; // "{ … }"
const s = http.createServer((req, res) => {
  res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
  res.end(body);
});
s.keepAliveTimeout = 65000;
s.listen(Number(process.env.PORT), "127.0.0.1", () => process.stdout.write("up\\n"));
`;

function startBare(bytes: number, port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["-e", BARE_SERVER], { env: { PORT: String(port), BODY_BYTES: String(bytes) }, stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    child.stdout!.once("data", () => resolve(child));
    child.once("exit", (code) => reject(new Error(`the bare server exited ${code}`)));
  });
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux; 0 elsewhere). */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in USER_HZ (100)
  } catch {
    return 0;
  }
}

const fmt = (xs: number[], p: number) => (xs.length ? percentile(xs, p).toFixed(2) : "—");
function line(label: string, r: LoadResult, cpu?: number): string {
  const errs = Object.entries(r.errors).map(([k, v]) => `${k}×${v}`).join(" ");
  return (
    `  ${label.padEnd(34)} p50 ${fmt(r.latency, 50).padStart(7)}  p95 ${fmt(r.latency, 95).padStart(7)}  p99 ${fmt(r.latency, 99).padStart(7)}  max ${fmt(r.latency, 100).padStart(7)} ms` +
    `   (service p99 ${fmt(r.service, 99)} ms; ${(r.ok / r.seconds).toFixed(0)} ok/s; late sends ${r.lateStarts}${errs ? `; errors ${errs}` : ""}` +
    `${cpu === undefined ? "" : `; server CPU ${((cpu * 1000) / Math.max(1, r.ok + Object.values(r.errors).reduce((x, y) => x + y, 0))).toFixed(3)} ms/request`})`
  );
}

async function main() {
  const base = loadEnvironment();
  const prefix = `bench${randomBytes(4).toString("hex")}`;
  const dbName = `ccp_bench_${process.pid}_${randomBytes(4).toString("hex")}`;
  const adminPassword = `bench-admin-${randomBytes(6).toString("hex")}`;
  const admin = postgres(adminDatabaseUrl(base), { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${dbName}"`);
  const dbUrl = databaseUrlFor(base, dbName);
  const database = createDatabase(dbUrl, { max: 4 });
  const redis = createRedis(base.REDIS_URL ?? "redis://127.0.0.1:6379", { name: "ccp-bench" });
  const children: ChildProcess[] = [];
  let cleaned: Promise<void> | undefined;
  const cleanup = () =>
    (cleaned ??= (async () => {
      const running = (c: ChildProcess) => c.exitCode === null && c.signalCode === null;
      for (const c of children) if (running(c)) c.kill("SIGTERM");
      await Promise.all(children.map((c) => (running(c) ? new Promise((r) => c.once("exit", r)) : undefined)));
      await deletePrefixedKeys(redis, prefix).catch(() => {});
      redis.disconnect();
      await database.close().catch(() => {});
      await admin.unsafe(`drop database if exists "${dbName}" with (force)`).catch(() => {});
      await admin.end().catch(() => {});
    })());
  const onSignal = () => void cleanup().then(() => process.exit(130));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  try {
    await runMigrations(database);

    // The API, in its own process; it seeds the admin account itself (ADMIN_USERNAME/PASSWORD).
    const port = await freePort();
    const baseUrl = `http://127.0.0.1:${port}`;
    const api = spawn(process.execPath, ["--import", "tsx", join(projectRoot, "main.ts"), "api"], {
      env: {
        ...process.env,
        ...(base as NodeJS.ProcessEnv),
        DATABASE_URL: dbUrl,
        REDIS_PREFIX: prefix,
        ADMIN_USERNAME: "admin",
        ADMIN_PASSWORD: adminPassword,
        API_LISTEN_ADDR: `127.0.0.1:${port}`,
        PUBLIC_BASE_URL: baseUrl,
      },
      stdio: ["ignore", "ignore", "inherit"],
    });
    children.push(api);
    await waitUntil("the api process answers /readyz", 60_000, async () =>
      (await fetch(`${baseUrl}/readyz`).then((r) => r.ok).catch(() => false)) || undefined,
    );

    const call = async (method: string, path: string, body?: unknown, token?: string) => {
      const res = await fetch(`${baseUrl}${path}`, {
        method,
        headers: { ...(body ? { "content-type": "application/json" } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
      return { text, json: text ? JSON.parse(text) : undefined };
    };
    const login = async (username: string, password: string) => (await call("POST", "/v1/auth/login", { username, password })).json.token as string;
    const adminToken = await waitUntil("the admin account is seeded", 30_000, () => login("admin", adminPassword).catch(() => undefined));

    // 200 hosts: one owned by a real user (logs in), the rest by fixture users (one host per user).
    const userPassword = `pw-${randomBytes(8).toString("hex")}`;
    const user = (await call("POST", "/v1/admin/users", { username: `benchreader${randomBytes(3).toString("hex")}`, password: userPassword }, adminToken)).json.user;
    const own = await insertHostRow(database.sql, { userId: user.id });
    for (let i = 1; i < HOSTS; i++) await insertHostRow(database.sql);
    const userToken = await login(user.username, userPassword);

    const targets = [
      { label: `GET /v1/admin/hosts?limit=${HOSTS}`, path: `/v1/admin/hosts?limit=${HOSTS}`, token: adminToken },
      { label: "GET /v1/user/hosts/{id}", path: `/v1/user/hosts/${own.id}`, token: userToken },
    ];
    const load = (url: string, token: string | undefined, seconds: number) =>
      runFixedRate({ url, headers: token ? { authorization: `Bearer ${token}` } : {}, rate: RATE, durationMs: seconds * 1000, connections: CONNECTIONS });
    /** A load series and the CPU seconds the serving process spent during it. */
    const measured = async (pid: number, url: string, token: string | undefined, seconds: number) => {
      const c0 = cpuSeconds(pid);
      const r = await load(url, token, seconds);
      return { r, cpu: cpuSeconds(pid) - c0 };
    };

    console.log(`API reads: ${HOSTS} hosts, ${RATE} req/s fixed rate (open loop), ${CONNECTIONS} keep-alive connections, ${WARMUP} s warm-up + ${SECONDS} s measured per series`);
    console.log("latency = due time → last byte, ms");
    const rows: BenchRow[] = [];
    for (const t of targets) {
      const answer = await call("GET", t.path, undefined, t.token);
      if (t.path.startsWith("/v1/admin/hosts") && answer.json.hosts.length !== HOSTS) throw new Error(`the list has ${answer.json.hosts.length} hosts, want ${HOSTS}`);
      const bytes = Buffer.byteLength(answer.text);
      const barePort = await freePort();
      const bare = await startBare(bytes, barePort);
      children.push(bare);
      try {
        await load(`http://127.0.0.1:${barePort}/`, undefined, WARMUP);
        await load(`${baseUrl}${t.path}`, t.token, WARMUP);
        const { r: b, cpu: bCpu } = await measured(bare.pid!, `http://127.0.0.1:${barePort}/`, undefined, SECONDS);
        const { r: a, cpu: aCpu } = await measured(api.pid!, `${baseUrl}${t.path}`, t.token, SECONDS);
        console.log(`${t.label} (${bytes} bytes)`);
        console.log(line("bare node http, same bytes", b, bCpu));
        console.log(line("API", a, aCpu));
        const failed = Object.values(a.errors).reduce((x, y) => x + y, 0);
        for (const p of [50, 95, 99] as const) {
          rows.push(
            benchRow({
              path: `${t.label} p${p} @ ${RATE}/s`,
              unit: "ms",
              ours: percentile(a.latency, p),
              baseline: percentile(b.latency, p),
              baselineLabel: "bare http",
              ...(p === 99 ? { target: { of: "ours", op: "<=", value: TARGET_P99_MS, text: `p99 ≤ ${TARGET_P99_MS} ms` } as const } : {}),
              ...(failed ? { note: `${failed} failed requests` } : {}),
            }),
          );
        }
        // A failed request is never a fast one: the target is not met when any failed.
        if (failed) rows.at(-1)!.met = false;
      } finally {
        bare.kill("SIGTERM");
      }
    }
    await load(`${baseUrl}/healthz`, undefined, WARMUP);
    const { r: h, cpu: hCpu } = await measured(api.pid!, `${baseUrl}/healthz`, undefined, SECONDS);
    console.log("GET /healthz (same API process; select 1, Redis PING, heartbeats)");
    console.log(line("API", h, hCpu));

    console.log(`\ntarget: p99 ≤ ${TARGET_P99_MS} ms at ${RATE} req/s`);
    for (const r of rows.filter((x) => x.target)) console.log(`  ${r.path}: ${r.ours.toFixed(2)} ms → ${r.met ? "met" : "NOT met"}`);
    writeBenchResult("api-reads", rows);
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
