/**
 * The whole product as separate processes, for the chaos stage (docs/chaos.md): its own Postgres
 * (a cluster initdb'd in a scratch directory, so stopping it touches nothing else on the machine),
 * its own Redis (no persistence: a restart loses every queue, lock and scheduler, the harshest
 * case), and the api, the sshd and any number of workers as `node dist/main.js <role>` children
 * that the test can SIGKILL and start again.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadEnvironment } from "../../shared/config/env-file.js";
import { projectRoot } from "../../shared/paths.js";
import { freePort, waitUntil } from "../../shared/test/processes.js";

type Env = Record<string, string | undefined>;

/** Output of a child kept to its last 64 KiB: enough to explain a failure, bounded for a long run. */
class Tail {
  private text = "";
  push(chunk: unknown): void {
    this.text += String(chunk);
    if (this.text.length > 131_072) this.text = this.text.slice(-65_536);
  }
  toString(): string {
    return this.text;
  }
}

export interface Role {
  readonly name: string;
  child: ChildProcess | null;
  readonly output: Tail;
  /** Resolves when the current child has exited. */
  exited: Promise<void>;
}

const asRoot = process.getuid?.() === 0;

/** The newest installed PostgreSQL server binaries (Debian: /usr/lib/postgresql/<major>/bin). */
function pgBin(): string {
  const base = "/usr/lib/postgresql";
  const majors = existsSync(base) ? readdirSync(base).filter((d) => /^\d+$/.test(d)).sort((a, b) => Number(b) - Number(a)) : [];
  for (const m of majors) if (existsSync(join(base, m, "bin", "pg_ctl"))) return join(base, m, "bin");
  throw new Error("no PostgreSQL server binaries under /usr/lib/postgresql (npm run setup installs them)");
}

/** Postgres refuses to run as root: as root, its commands run as the `postgres` user. */
function pgRun(args: string[]): string {
  const [cmd, ...rest] = args;
  const argv = asRoot ? ["runuser", "-u", "postgres", "--", join(pgBin(), cmd!), ...rest] : [join(pgBin(), cmd!), ...rest];
  return execFileSync(argv[0]!, argv.slice(1), { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 120_000 });
}

export class OwnPostgres {
  readonly dir: string;
  constructor(readonly port: number) {
    this.dir = mkdtempSync(join(tmpdir(), "ccp-chaos-pg-"));
    chmodSync(this.dir, 0o700);
    if (asRoot) execFileSync("chown", ["postgres:postgres", this.dir]);
    pgRun(["initdb", "-D", this.dir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
  }
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }
  start(): void {
    const opts = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off`;
    pgRun(["pg_ctl", "-D", this.dir, "-l", join(this.dir, "server.log"), "-o", opts, "-w", "-t", "60", "start"]);
  }
  /** A fast shutdown: connections are cut, as in a restart by an operator or a crash-restart. */
  stop(): void {
    pgRun(["pg_ctl", "-D", this.dir, "-m", "fast", "-w", "-t", "60", "stop"]);
  }
  destroy(): void {
    try {
      this.stop();
    } catch {
      // already stopped
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export class OwnRedis {
  private child: ChildProcess | null = null;
  constructor(readonly port: number) {}
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }
  async start(): Promise<void> {
    // No RDB, no AOF: what a restart loses is everything.
    this.child = spawn("redis-server", ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdio: "ignore",
    });
    await waitUntil("redis to answer", 30_000, async () => {
      try {
        execFileSync("redis-cli", ["-p", String(this.port), "ping"], { stdio: "pipe" });
        return true;
      } catch {
        return undefined;
      }
    });
  }
  async stop(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null) return;
    const gone = new Promise((r) => c.once("exit", r));
    c.kill("SIGKILL");
    await gone;
    this.child = null;
  }
}

export interface ChaosStack {
  pg: OwnPostgres;
  redis: OwnRedis;
  env: Env;
  apiUrl: string;
  sshPort: number;
  prefix: string;
  adminPassword: string;
  roles: Map<string, Role>;
  /** Start (or start again) a role: `api`, `sshd`, or a worker named `worker:<engine>:<n>`. */
  start(name: string, extraEnv?: Env): Promise<Role>;
  /** SIGKILL a role's process and wait for it to be gone. */
  kill(name: string): Promise<void>;
  close(): Promise<void>;
}

export async function startChaosStack(opts: { workerEnv: (engine: string) => Env; common: Env }): Promise<ChaosStack> {
  const base = loadEnvironment();
  const pg = new OwnPostgres(await freePort());
  pg.start();
  const redis = new OwnRedis(await freePort());
  await redis.start();
  const apiPort = await freePort();
  const sshPort = await freePort();
  const prefix = `chaos${randomBytes(4).toString("hex")}`;
  const adminPassword = `chaos-${randomBytes(8).toString("hex")}`;
  const env: Env = {
    ...process.env,
    ...base,
    NODE_ENV: "production",
    DATABASE_URL: pg.url,
    REDIS_URL: redis.url,
    REDIS_PREFIX: prefix,
    API_LISTEN_ADDR: `127.0.0.1:${apiPort}`,
    SSH_LISTEN_ADDR: `127.0.0.1:${sshPort}`,
    ADMIN_USERNAME: "admin",
    ADMIN_PASSWORD: adminPassword,
    PUBLIC_BASE_URL: `http://127.0.0.1:${apiPort}`,
    LOG_LEVEL: "info",
    HOST_POOL_SIZE: "0",
    EGRESS_TEST_SPARE: "false",
    ...opts.common,
  };
  const roles = new Map<string, Role>();

  const start = async (name: string, extraEnv: Env = {}): Promise<Role> => {
    const [kind, engine] = name.split(":");
    const roleEnv: Env = { ...env, ...(kind === "worker" ? { ...opts.workerEnv(engine!), WORKER_ID: name } : {}), ...extraEnv };
    const child = spawn(process.execPath, [join(projectRoot, "dist/main.js"), kind!], {
      cwd: projectRoot,
      env: roleEnv as NodeJS.ProcessEnv,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const role: Role = roles.get(name) ?? { name, child: null, output: new Tail(), exited: Promise.resolve() };
    role.child = child;
    child.stdout!.on("data", (d) => role.output.push(d));
    child.stderr!.on("data", (d) => role.output.push(d));
    role.exited = new Promise((r) => child.once("exit", () => r()));
    roles.set(name, role);
    return role;
  };

  const kill = async (name: string): Promise<void> => {
    const role = roles.get(name);
    const c = role?.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill("SIGKILL");
    await role!.exited;
  };

  const stack: ChaosStack = {
    pg,
    redis,
    env,
    apiUrl: `http://127.0.0.1:${apiPort}`,
    sshPort,
    prefix,
    adminPassword,
    roles,
    start,
    kill,
    async close() {
      for (const name of roles.keys()) await kill(name);
      await redis.stop();
      pg.destroy();
    },
  };
  // The api applies the migrations; the workers wait for the schema.
  await start("api");
  await waitUntil("the api on its port", 120_000, async () => {
    const res = await fetch(`${stack.apiUrl}/readyz`).catch(() => null);
    return res?.ok ? true : undefined;
  });
  await start("sshd");
  return stack;
}

/** A deterministic PRNG (mulberry32): the same seed replays the same faults in the same order. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An OpenSSH client session through the entry proxy that stays open: write lines, read echoes. */
export function sshAskpass(dir: string): string {
  const p = join(dir, "askpass");
  writeFileSync(p, '#!/bin/sh\nprintf "%s\\n" "$CCP_TEST_SECRET"\n');
  chmodSync(p, 0o700);
  return p;
}
