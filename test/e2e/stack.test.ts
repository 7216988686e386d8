import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadEnvironment } from "../../shared/config/env-file.js";
import { cloneTemplateDatabase } from "../../shared/test/databases.js";
import { buildDist, freePort, spawnLogged, waitUntil, type Spawned } from "../../shared/test/processes.js";

/**
 * The real thing: `npm start` (supervisor + api + worker + sshd as separate processes) on real
 * Postgres and Redis, talked to over TCP.
 */
const ADMIN_PASSWORD = `e2e-${randomBytes(6).toString("hex")}`;
let db: Awaited<ReturnType<typeof cloneTemplateDatabase>>;
let env: Record<string, string | undefined>;
let apiPort: number;
let sshPort: number;
let stack: Spawned;

const api = (path: string, init: RequestInit = {}) => fetch(`http://127.0.0.1:${apiPort}${path}`, init);

function sshBanner(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1");
    let data = "";
    sock.setTimeout(5000, () => sock.destroy(new Error("no banner")));
    sock.on("data", (d) => {
      data += String(d);
      if (data.includes("\n")) {
        sock.destroy();
        resolve(data.split("\r\n")[0]!);
      }
    });
    sock.on("error", reject);
  });
}

const childPids = (ppid: number): number[] => {
  try {
    return execFileSync("pgrep", ["-P", String(ppid)], { encoding: "utf8" })
      .split("\n")
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
};
/** Role processes (`main.js api|worker|sshd`) anywhere below `pid` (npm → sh → supervisor → roles). */
const rolePids = (pid: number): number[] => {
  const found: number[] = [];
  const walk = (p: number) => {
    for (const c of childPids(p)) {
      let cmd = "";
      try {
        cmd = readFileSync(`/proc/${c}/cmdline`, "utf8").split("\0").join(" ");
      } catch {
        // exited meanwhile
      }
      if (/main\.js (api|worker|sshd)\b/.test(cmd)) found.push(c);
      walk(c);
    }
  };
  walk(pid);
  return found;
};
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

beforeAll(async () => {
  buildDist();
  const base = loadEnvironment();
  db = await cloneTemplateDatabase(base);
  apiPort = await freePort();
  sshPort = await freePort();
  env = {
    ...process.env,
    ...base,
    DATABASE_URL: db.url,
    REDIS_PREFIX: `e2e${randomBytes(4).toString("hex")}`,
    API_LISTEN_ADDR: `127.0.0.1:${apiPort}`,
    SSH_LISTEN_ADDR: `127.0.0.1:${sshPort}`,
    ADMIN_USERNAME: "admin",
    ADMIN_PASSWORD,
    PUBLIC_BASE_URL: `http://127.0.0.1:${apiPort}`,
    HEARTBEAT_INTERVAL_SECONDS: "1",
    LOG_LEVEL: "info",
    // No warm pool: this stack is killed, not cleaned up, and must leave no container behind.
    HOST_POOL_SIZE: "0",
    EGRESS_TEST_SPARE: "false",
  };
  // Vitest sets NODE_ENV=test; the stack must not care.
  stack = spawnLogged("npm", ["start", "--silent"], env);
  await waitUntil("the api on its port", 60_000, async () => ((await api("/healthz")).ok ? true : undefined));
});

afterAll(async () => {
  if (stack?.child.exitCode === null) {
    stack.child.kill("SIGKILL");
  }
  await db?.drop();
});

describe("npm start", () => {
  it("serves the API over TCP with the seeded admin", async () => {
    const login = await api("/v1/auth/login", {
      method: "POST",
      body: JSON.stringify({ username: "admin", password: ADMIN_PASSWORD }),
    });
    expect(login.status, stack.output()).toBe(200);
    const { token } = (await login.json()) as { token: string };
    const created = await api("/v1/admin/users", {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
      body: JSON.stringify({ username: "e2e-user", password: "e2e-password" }),
    });
    expect(created.status).toBe(201);
    const userLogin = await api("/v1/auth/login", {
      method: "POST",
      body: JSON.stringify({ username: "e2e-user", password: "e2e-password" }),
    });
    expect(userLogin.status).toBe(200);
    expect(((await userLogin.json()) as { role: string }).role).toBe("user");
  });

  it("shows the worker's heartbeat in /healthz", async () => {
    const body = await waitUntil("a worker heartbeat", 30_000, async () => {
      const b = (await (await api("/healthz")).json()) as { checks: { agent: string; database: string; redis: string } };
      return b.checks.agent === "no_workers" ? undefined : b;
    });
    expect(body.checks.database).toBe("ok");
    expect(body.checks.redis).toBe("ok");
    // With a Docker engine the agent is ok; without one the worker says so rather than lying.
    expect(["ok", "docker_unreachable"]).toContain(body.checks.agent);
  });

  it("runs the SSH entry proxy with its persistent host key", async () => {
    expect(await sshBanner(sshPort)).toBe("SSH-2.0-cloud-cli-proxy");
    const sql = postgres(db.url, { max: 1 });
    const rows = await sql`select public_key, private_key_enc from system_keys where name = 'ssh_proxy_host_key'`;
    await sql.end();
    expect(rows).toHaveLength(1);
    expect(rows[0]!.public_key).toMatch(/^ssh-ed25519 /);
    expect(rows[0]!.private_key_enc).toMatch(/^v\d+a:/);
    expect(rows[0]!.private_key_enc).not.toContain("PRIVATE KEY");
  });

  it("logs JSON lines without secrets", () => {
    const out = stack.output();
    expect(out).toContain('"proc":"api"');
    expect(out).toContain('"proc":"worker"');
    expect(out).toContain('"proc":"sshd"');
    expect(out).not.toContain(ADMIN_PASSWORD);
    expect(out).not.toContain("e2e-password");
    expect(out).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
  });

  it("stops every process cleanly on SIGTERM", async () => {
    const roles = rolePids(stack.child.pid!);
    expect(roles.length).toBe(3);
    // What a service manager does: SIGTERM to the supervisor; npm then exits with its status.
    const supervisor = childPids(stack.child.pid!)
      .flatMap((p) => [p, ...childPids(p)])
      .find((p) => {
        const argv = readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0").filter(Boolean);
        return argv.length === 2 && argv[0]!.endsWith("node") && argv[1] === "dist/main.js";
      });
    expect(supervisor).toBeDefined();
    process.kill(supervisor!, "SIGTERM");
    const { code } = await stack.exited;
    expect(code, stack.output()).toBe(0);
    await waitUntil("role processes to exit", 15_000, async () => (roles.every((p) => !alive(p)) ? true : undefined));
    expect(stack.output()).toMatch(/"proc":"api".*"msg":"stopped"/);
    expect(stack.output()).toMatch(/"proc":"worker".*"msg":"stopped"/);
  });
});

describe("the supervisor", () => {
  it("stops the others when one role dies", async () => {
    const port = await freePort();
    const s = spawnLogged(process.execPath, ["dist/main.js"], {
      ...env,
      API_LISTEN_ADDR: `127.0.0.1:${port}`,
      SSH_LISTEN_ADDR: `127.0.0.1:${await freePort()}`,
    });
    await waitUntil("the api", 60_000, async () =>
      (await fetch(`http://127.0.0.1:${port}/healthz`)).ok ? true : undefined,
    );
    const roles = await waitUntil("three role processes", 10_000, async () => {
      const pids = childPids(s.child.pid!);
      return pids.length === 3 ? pids : undefined;
    });
    process.kill(roles[2]!, "SIGKILL");
    const { code } = await s.exited;
    expect(code).not.toBe(0);
    expect(s.output()).toMatch(/supervisor: \w+ exited/);
    await waitUntil("all roles to exit", 15_000, async () => (roles.every((p) => !alive(p)) ? true : undefined));
  });
});

describe("configuration errors", () => {
  it("the worker exits naming EGRESS_CHECK_URL when the rest of the check variables are set (all or none)", async () => {
    const s = spawnLogged(process.execPath, ["dist/main.js", "worker"], { ...env, EGRESS_CHECK_URL: "" });
    const { code } = await s.exited;
    expect(code).not.toBe(0);
    expect(s.output()).toContain("EGRESS_CHECK_URL is required: the egress check variables are set all or none (missing: EGRESS_CHECK_URL)");
  });

  it("the api refuses a short ADMIN_JWT_SECRET", async () => {
    const s = spawnLogged(process.execPath, ["dist/main.js", "api"], { ...env, ADMIN_JWT_SECRET: "short" });
    const { code } = await s.exited;
    expect(code).not.toBe(0);
    expect(s.output()).toContain("ADMIN_JWT_SECRET is invalid: must be at least 32 bytes");
  });
});
