/**
 * A throwaway stack for the SSH benchmarks: its own database (created and migrated here, since
 * scripts cannot use vitest's template), its own Redis prefix, the API in-process (requests go
 * through app.request), a real worker creating real containers, and the SSH proxy in a child
 * process of its own. `close()` removes everything it made (containers, volumes, Redis keys,
 * the database, the scratch directory), also on Ctrl-C.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { secretAt, type SecretBox } from "../../shared/crypto/secrets.js";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface, type Interface } from "node:readline";
import { execFileSync } from "node:child_process";
import { eq } from "drizzle-orm";
import postgres from "postgres";
import { buildApiDeps } from "../../api/main.js";
import { createApp } from "../../api/app.js";
import { runMigrations } from "../../drizzle/migrate.js";
import { parseApiConfig } from "../../shared/config/api.js";
import { loadEnvironment } from "../../shared/config/env-file.js";
import { parseWorkerConfig } from "../../shared/config/worker.js";
import { createDatabase, type Database } from "../../shared/db/client.js";
import { hosts } from "../../shared/db/schema/index.js";
import { createLogger } from "../../shared/logger.js";
import { createQueues } from "../../shared/queue/queues.js";
import { createRedis, deletePrefixedKeys, waitForRedis } from "../../shared/redis.js";
import { seedAdmin } from "../../shared/services/auth/seed-admin.js";
import { adminDatabaseUrl, databaseUrlFor } from "../../shared/test/db-names.js";
import {
  ensureTestNetworks,
  removeInstanceObjects,
  TEST_MGMT_NETWORK,
  TEST_UNDERLAY_NETWORK,
} from "../../shared/test/worker-harness.js";
import type { WorkerDeps } from "../../worker/deps.js";
import { startWorker } from "../../worker/main.js";

/** Benchmark databases: `ccp_bench_<pid>_<hex>`, never matched by the tests' `ccp_t_` cleanup. */
const BENCH_DB_PREFIX = "ccp_bench_";
const ADMIN_PASSWORD = `bench-admin-${randomBytes(6).toString("hex")}`;

export interface BenchHost {
  id: string;
  shortId: string;
  /** The host's SSH password (proxy login). */
  password: string;
  managementAddress: string;
  /** OpenSSH private key file of the owner, registered with the API (proxy publickey login). */
  userKey: string;
  /** The proxy's internal key for this host, decrypted from the database (direct login). */
  internalKey: string;
  /** known_hosts pinning the host's sshd key at its management address. */
  directKnownHosts: string;
  /** A login token of the host's owner (user role). */
  userToken: string;
}

export interface Proxy {
  port: number;
  hostKey: string;
  pid: number;
  knownHosts: string;
  /** process.memoryUsage() of the proxy process. */
  memory(): Promise<{ rss: number; heapUsed: number }>;
}

export interface BenchStack {
  dir: string;
  /** The environment the stack's processes run with (database, Redis prefix, admin account). */
  env: Record<string, string | undefined>;
  adminToken: string;
  database: Database;
  prefix: string;
  proxy: Proxy;
  askpass: string;
  /** An in-process API request (app.request, client address 127.0.0.1). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  request(method: string, path: string, o?: { body?: unknown; token?: string }): Promise<{ status: number; body: any }>;
  createHost(opts?: { pids_limit?: number; memory_limit_mb?: number }): Promise<BenchHost>;
  /** The in-process worker's deps (its warm pool, its spare egress-test gateway). */
  workerDeps: WorkerDeps;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startBenchStack(
  opts: {
    sshdEnv?: Record<string, string>;
    workerEnv?: Record<string, string>;
    /** Run after the API is up and before any worker starts (e.g. add engine rows, bench/engines.ts). */
    beforeWorkers?: (o: { database: Database; secrets: SecretBox }) => Promise<void>;
    /** More in-process workers, each with these variables over the first's (e.g. another ENGINE_ID). */
    extraWorkers?: Record<string, string>[];
  } = {},
): Promise<BenchStack> {
  const cleanups: (() => Promise<void> | void)[] = [];
  // One cleanup run, however many callers (the script's finally, a signal) ask for it.
  let cleaning: Promise<void> | undefined;
  const runCleanups = () =>
    (cleaning ??= (async () => {
      for (const c of cleanups.splice(0).reverse()) {
        try {
          await c();
        } catch (err) {
          console.error("cleanup step failed:", (err as Error).message);
        }
      }
    })());
  const onSignal = () => {
    console.error("\ninterrupted; cleaning up");
    void runCleanups().then(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  cleanups.push(() => {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  });

  try {
    const base = loadEnvironment();
    const dir = mkdtempSync(join(tmpdir(), "ccp-bench-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));

    // Database: create, migrate; dropped at the end.
    const dbName = `${BENCH_DB_PREFIX}${process.pid}_${randomBytes(4).toString("hex")}`;
    const admin = postgres(adminDatabaseUrl(base), { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database "${dbName}"`);
    await admin.end();
    cleanups.push(async () => {
      const a = postgres(adminDatabaseUrl(base), { max: 1, onnotice: () => {} });
      await a.unsafe(`drop database if exists "${dbName}" with (force)`);
      await a.end();
    });
    const dbUrl = databaseUrlFor(base, dbName);
    const database: Database = createDatabase(dbUrl, { max: 5 });
    cleanups.push(() => database.close());
    await runMigrations(database);

    const prefix = `bench${randomBytes(4).toString("hex")}`;
    const env: Record<string, string | undefined> = {
      ...base,
      DATABASE_URL: dbUrl,
      REDIS_PREFIX: prefix,
      ADMIN_USERNAME: "admin",
      ADMIN_PASSWORD,
      LOG_LEVEL: "warn",
      LOG_FORMAT: "json",
    };
    const quiet = createLogger({ level: "warn" });

    // Redis (API side) and its keys, removed at the end.
    const redis = createRedis(env.REDIS_URL ?? "redis://127.0.0.1:6379", { name: "ccp-bench" });
    await waitForRedis(redis);
    const queueConnection = createRedis(env.REDIS_URL ?? "redis://127.0.0.1:6379", { name: "ccp-bench-queues", forBullmq: true });
    const queues = createQueues(queueConnection, prefix);
    cleanups.push(async () => {
      await deletePrefixedKeys(redis, prefix);
      await queues.close();
      queueConnection.disconnect();
      redis.disconnect();
    });

    // API in-process.
    const apiConfig = parseApiConfig(env);
    await seedAdmin(database.db, quiet, { username: "admin", password: ADMIN_PASSWORD, now: new Date() });
    const apiDeps = buildApiDeps(apiConfig, quiet, { database, redis, queues });
    const app = createApp(apiDeps);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const request = async (method: string, path: string, o: { body?: unknown; token?: string } = {}): Promise<{ status: number; body: any }> => {
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (o.token) headers.authorization = `Bearer ${o.token}`;
      const res = await app.request(
        path,
        { method, headers, body: o.body === undefined ? undefined : JSON.stringify(o.body) },
        { incoming: { socket: { remoteAddress: "127.0.0.1" } } },
      );
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    };
    const login = async (username: string, password: string) => {
      const r = await request("POST", "/v1/auth/login", { body: { username, password } });
      if (r.status !== 200) throw new Error(`login failed: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body.token as string;
    };
    const adminToken = await login("admin", ADMIN_PASSWORD);

    // Worker (creates the containers; removed at the end by their instance label).
    ensureTestNetworks();
    cleanups.push(() => removeInstanceObjects(prefix));
    await opts.beforeWorkers?.({ database, secrets: apiDeps.secrets });
    const workerEnv = (extra: Record<string, string>) =>
      parseWorkerConfig({
        ...env,
        MGMT_NETWORK: TEST_MGMT_NETWORK,
        EGRESS_UNDERLAY_NETWORK: TEST_UNDERLAY_NETWORK,
        RECONCILE_INTERVAL_SECONDS: "3600",
        EXPIRY_SCAN_INTERVAL_SECONDS: "3600",
        SWEEP_INTERVAL_SECONDS: "3600",
        CONTAINER_STOP_GRACE_SECONDS: "1",
        // No warm pool unless the bench asks for one (bench/pool-create.ts).
        HOST_POOL_SIZE: "0",
        // Nor a spare egress-test gateway unless the bench asks (bench/egress-create.ts).
        EGRESS_TEST_SPARE: "false",
        ...(opts.workerEnv ?? {}),
        ...extra,
      });
    const worker = await startWorker(workerEnv({}), quiet, { database });
    cleanups.push(() => worker.stop());
    for (const extra of opts.extraWorkers ?? []) {
      const w = await startWorker(workerEnv(extra), quiet, { database });
      cleanups.push(() => w.stop());
    }

    // The proxy, in its own process.
    const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "sshd-child.ts")], {
      env: { ...process.env, ...(env as NodeJS.ProcessEnv), SSH_LISTEN_ADDR: "127.0.0.1:0", ...(opts.sshdEnv ?? {}) },
      stdio: ["pipe", "pipe", "inherit"],
    });
    const childExit = new Promise<void>((r) => child.once("exit", () => r()));
    cleanups.push(async () => {
      child.stdin!.end("stop\n");
      await Promise.race([childExit, sleep(8000)]);
      if (child.exitCode === null) child.kill("SIGKILL");
    });
    const lines: Interface = createInterface({ input: child.stdout! });
    const waiting: ((l: string) => void)[] = [];
    lines.on("line", (l) => waiting.shift()?.(l));
    const nextLine = () =>
      new Promise<string>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error("the proxy process did not answer")), 30_000);
        waiting.push((l) => {
          clearTimeout(t);
          resolve(l);
        });
      });
    const hello = JSON.parse(await nextLine()) as { port: number; hostKey: string };
    const knownHosts = join(dir, "proxy_known_hosts");
    writeFileSync(knownHosts, `[127.0.0.1]:${hello.port} ${hello.hostKey}\n`);
    const proxy: Proxy = {
      port: hello.port,
      hostKey: hello.hostKey,
      pid: child.pid!,
      knownHosts,
      memory: async () => {
        const p = nextLine();
        child.stdin!.write("rss\n");
        return JSON.parse(await p) as { rss: number; heapUsed: number };
      },
    };

    const askpass = join(dir, "askpass");
    writeFileSync(askpass, '#!/bin/sh\nprintf "%s\\n" "$CCP_BENCH_SECRET"\n');
    chmodSync(askpass, 0o700);

    const secrets = apiDeps.secrets;
    let n = 0;
    const createHost: BenchStack["createHost"] = async (hostOpts = {}) => {
      const i = n++;
      const username = `bench${i}${randomBytes(3).toString("hex")}`;
      const password = `pw-${randomBytes(8).toString("hex")}`;
      const u = await request("POST", "/v1/admin/users", { token: adminToken, body: { username, password } });
      if (u.status !== 201) throw new Error(`create user: ${u.status} ${JSON.stringify(u.body)}`);
      const userToken = await login(username, password);
      const userKey = join(dir, `user${i}_key`);
      execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `bench${i}`, "-f", userKey]);
      const k = await request("POST", "/v1/user/ssh-keys", {
        token: userToken,
        body: { public_key: readFileSync(`${userKey}.pub`, "utf8").trim() },
      });
      if (k.status !== 201) throw new Error(`add key: ${k.status} ${JSON.stringify(k.body)}`);
      const h = await request("POST", "/v1/admin/hosts", { token: adminToken, body: { user_id: u.body.user.id, ...hostOpts } });
      if (h.status !== 202) throw new Error(`create host: ${h.status} ${JSON.stringify(h.body)}`);
      const deadline = Date.now() + 120_000;
      for (;;) {
        const t = await request("GET", `/v1/admin/tasks/${h.body.task_id}`, { token: adminToken });
        if (t.body.task.status === "succeeded") break;
        if (["failed", "canceled"].includes(t.body.task.status)) throw new Error(`host task ${t.body.task.status}: ${t.body.task.error_message}`);
        if (Date.now() > deadline) throw new Error("host task did not finish");
        await sleep(250);
      }
      // Key sync (host.sync-keys) is irrelevant to the proxy; the host password is rotated to learn it.
      const rot = await request("POST", `/v1/admin/hosts/${h.body.host.id}/rotate-ssh-password`, { token: adminToken });
      const [row] = await database.db.select().from(hosts).where(eq(hosts.id, h.body.host.id));
      const internalKey = join(dir, `internal${i}_key`);
      writeFileSync(internalKey, secrets.decrypt(row!.internalKeyPrivateEnc!, secretAt.host(row!.id, "internal_key_private_enc")), { mode: 0o600 });
      const directKnownHosts = join(dir, `host${i}_known_hosts`);
      writeFileSync(directKnownHosts, `${row!.managementAddress} ${row!.hostKeyPublic}\n`);
      return {
        id: row!.id,
        shortId: row!.shortId,
        password: rot.body.ssh_password as string,
        managementAddress: row!.managementAddress!,
        userKey,
        internalKey,
        directKnownHosts,
        userToken,
      };
    };

    return { dir, env, adminToken, database, prefix, proxy, askpass, request, createHost, workerDeps: worker.deps, close: runCleanups };
  } catch (err) {
    await runCleanups();
    throw err;
  }
}

/** Common OpenSSH client options (no config files, pinned keys, quiet). */
export function baseSshOptions(knownHosts: string): string[] {
  return [
    "-F", "/dev/null",
    "-o", `UserKnownHostsFile=${knownHosts}`,
    "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", "StrictHostKeyChecking=yes",
    "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=10",
  ];
}

/** argv for `ssh` through the proxy (publickey with the owner's key, or the host password). */
export function proxyArgv(s: BenchStack, h: BenchHost, auth: "publickey" | "password", command: string[]): string[] {
  return [
    "-p", String(s.proxy.port),
    ...baseSshOptions(s.proxy.knownHosts),
    ...(auth === "publickey"
      ? ["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", h.userKey, "-o", "PreferredAuthentications=publickey"]
      : ["-o", "BatchMode=no", "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password", "-o", "NumberOfPasswordPrompts=1"]),
    `${h.shortId}@127.0.0.1`,
    ...command,
  ];
}

/** argv for `ssh` straight to the host's sshd (the proxy's own path: internal key, pinned host key). */
export function directArgv(h: BenchHost, command: string[]): string[] {
  return [
    ...baseSshOptions(h.directKnownHosts),
    "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", h.internalKey,
    `workspace@${h.managementAddress}`,
    ...command,
  ];
}

/** Environment for ssh: the password (if any) through SSH_ASKPASS, never argv; no agent. */
export function sshEnv(s: BenchStack, password = ""): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, SSH_ASKPASS: s.askpass, SSH_ASKPASS_REQUIRE: "force", DISPLAY: ":0", CCP_BENCH_SECRET: password };
  delete env.SSH_AUTH_SOCK;
  return env;
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Nearest-rank percentile. */
export const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
};

export const mib = (bytes: number) => bytes / (1024 * 1024);

/** Until the stack's warm pool has a ready member (bench/pool-create.ts, bench/egress-create.ts). */
export async function waitPoolReady(s: BenchStack, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [r] = await s.database.sql<{ n: number }[]>`select count(*)::int as n from host_pool where state = 'ready'`;
    if (r!.n >= 1) return;
    if (Date.now() > deadline) throw new Error("the pool did not refill");
    await sleep(50);
  }
}

/**
 * Until the task row reads `succeeded` (read from Postgres every 2 ms, so the poll adds at most
 * that to a timing); failed or canceled throws with its code.
 */
export async function waitTaskRow(s: BenchStack, id: string, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [t] = await s.database.sql<{ status: string; error_code: string | null; error_message: string | null }[]>`
      select status, error_code, error_message from tasks where id = ${id}`;
    if (t?.status === "succeeded") return;
    if (t && ["failed", "canceled"].includes(t.status)) throw new Error(`task ${id} ${t.status}: ${t.error_code} ${t.error_message}`);
    if (Date.now() > deadline) throw new Error(`task ${id} did not finish`);
    await sleep(2);
  }
}
