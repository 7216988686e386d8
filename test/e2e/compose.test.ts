/**
 * Heavy stage: docker-compose.yml end to end, with no registry (README "Operations", docker
 * compose). Builds (or finds up to date, by content hash) the local images, including the
 * Postgres and Redis ones from Debian's packages (`deploy/images/build.sh --with-compose-images`)
 * and the app image (`deploy/images/build-app.sh`), then:
 *
 *   compose up --scale worker=3 → /healthz ok, three workers with distinct ids beating →
 *   create a user and a host over the API → SSH through the compose sshd with the real OpenSSH
 *   client → a file written in home survives a rebuild → delete the host → compose down -v →
 *   nothing of this instance or compose project is left.
 *
 * Everything is unique to this run: the compose project, the loopback ports (API, SSH, Postgres,
 * Redis), the Redis prefix (the `cloud-cli-proxy.instance` label of the hosts), the management
 * and underlay networks, and the env file with fresh secrets (in a temp dir; the repository's
 * .env is never read). Cleanup runs on failure too.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectRoot } from "../../shared/paths.js";
import { redisKey } from "../../shared/redis.js";
import { apiClient, must, removeNetworks, sshClient, stackEnvLines } from "../../shared/test/deploy-stack.js";
import { freePort, waitUntil } from "../../shared/test/processes.js";
import { instanceObjects, removeInstanceObjects } from "../../shared/test/worker-harness.js";

const id = randomBytes(4).toString("hex");
const PROJECT = `ccpcompose${id}`;
const PREFIX = `cmp${id}`;
const MGMT_NETWORK = `ccp-cmp-${id}-mgmt`;
const UNDERLAY_NETWORK = `ccp-cmp-${id}-underlay`;
const ADMIN_PASSWORD = `admin-${randomBytes(12).toString("hex")}`;
const PG_PASSWORD = randomBytes(16).toString("hex");
const WORKERS = 3;

let dir: string;
let composeCmd: string[] = [];
let composeEnv: NodeJS.ProcessEnv;
let ports: { api: number; ssh: number; pg: number; redis: number };
let started = false;

const { api, waitForTask } = apiClient(() => `http://127.0.0.1:${ports.api}`);
let ssh: ReturnType<typeof sshClient>["ssh"];
let pinProxyHostKey: ReturnType<typeof sshClient>["pinProxyHostKey"];

const compose = (args: string[], timeoutMs = 300_000) =>
  must(composeCmd[0]!, [...composeCmd.slice(1), "-p", PROJECT, "-f", join(projectRoot, "docker-compose.yml"), "--env-file", join(dir, "compose.env"), ...args], {
    env: composeEnv,
    timeoutMs,
  });

/** `docker compose` (the plugin) when the engine has it, else `docker-compose` (Debian's v1.29). */
function findCompose(): string[] {
  for (const c of [["docker", "compose"], ["docker-compose"]]) {
    try {
      execFileSync(c[0]!, [...c.slice(1), "version"], { stdio: "ignore" });
      return c;
    } catch {
      // next
    }
  }
  throw new Error("neither `docker compose` nor `docker-compose` is installed (npm run setup installs docker-compose)");
}

const projectContainers = () =>
  execFileSync("docker", ["ps", "-aq", "--filter", `label=com.docker.compose.project=${PROJECT}`], { encoding: "utf8" })
    .split("\n")
    .filter(Boolean);

beforeAll(async () => {
  composeCmd = findCompose();
  dir = mkdtempSync(join(tmpdir(), "ccp-compose-"));
  // Images: each build is skipped when its tag already carries the expected content hash.
  await must("bash", ["deploy/images/build.sh", "--with-compose-images"], { timeoutMs: 900_000 });
  await must("bash", ["deploy/images/build-app.sh"], { timeoutMs: 900_000 });

  ports = { api: await freePort(), ssh: await freePort(), pg: await freePort(), redis: await freePort() };
  writeFileSync(
    join(dir, "app.env"),
    [...stackEnvLines({ adminPassword: ADMIN_PASSWORD, ports, prefix: PREFIX, mgmtNetwork: MGMT_NETWORK, underlayNetwork: UNDERLAY_NETWORK }), ""].join("\n"),
    { mode: 0o600 },
  );
  const vars = {
    POSTGRES_PASSWORD: PG_PASSWORD,
    CCP_ENV_FILE: join(dir, "app.env"),
    CCP_COMPOSE_PG_PORT: String(ports.pg),
    CCP_COMPOSE_REDIS_PORT: String(ports.redis),
  };
  writeFileSync(join(dir, "compose.env"), Object.entries(vars).map(([k, v]) => `${k}=${v}\n`).join(""), { mode: 0o600 });
  composeEnv = { ...process.env, ...vars };
  for (const k of ["CCP_POSTGRES_IMAGE", "CCP_REDIS_IMAGE"]) delete composeEnv[k];
  ({ ssh, pinProxyHostKey } = sshClient(dir, () => ports.ssh));

  started = true;
  await compose(["up", "-d", "--no-build", "--scale", `worker=${WORKERS}`]);
}, 1_500_000);

afterAll(async () => {
  try {
    if (started) await compose(["down", "-v", "--remove-orphans", "-t", "20"]).catch(() => undefined);
  } finally {
    try {
      removeInstanceObjects(PREFIX);
    } catch {
      // best effort; the assertion below already failed if anything was left
    }
    removeNetworks([MGMT_NETWORK, UNDERLAY_NETWORK]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}, 180_000);

describe("docker compose (no registry)", () => {
  let admin: string;
  let host: { id: string; shortId: string; password: string };

  it("serves /healthz ok with three workers of distinct ids beating", async () => {
    await waitUntil("/healthz ok", 180_000, async () => ((await api("GET", "/healthz")).body?.status === "ok" ? true : undefined));
    const redis = new Redis(`redis://127.0.0.1:${ports.redis}`, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await redis.connect();
      const beats = await waitUntil(`${WORKERS} worker heartbeats`, 120_000, async () => {
        const records = Object.values(await redis.hgetall(redisKey(PREFIX, "heartbeats"))).map(
          (v) => JSON.parse(v) as { worker_id: string; docker_ok: boolean; at: string },
        );
        const fresh = records.filter((r) => r.docker_ok && Date.now() - Date.parse(r.at) < 10_000);
        return fresh.length >= WORKERS ? fresh : undefined;
      });
      expect(new Set(beats.map((b) => b.worker_id)).size).toBe(WORKERS);
    } finally {
      redis.disconnect();
    }
    const workers = (await compose(["ps", "-q", "worker"], 60_000)).split("\n").filter(Boolean);
    expect(workers).toHaveLength(WORKERS);
  });

  it("every service's health check passes, at this run's API and SSH ports", async () => {
    const ids = (await compose(["ps", "-q"], 60_000)).split("\n").filter(Boolean);
    expect(ids).toHaveLength(4 + WORKERS); // postgres, redis, api, sshd and the workers
    await waitUntil("every compose container healthy", 120_000, async () => {
      const states = execFileSync("docker", ["inspect", "-f", "{{.Name}} {{.State.Health.Status}}", ...ids], { encoding: "utf8" });
      return states.trim().split("\n").every((l) => l.endsWith(" healthy")) ? true : undefined;
    });
  });

  it("creates a user and a host over the API and reaches it over SSH through the compose sshd", async () => {
    const login = await api("POST", "/v1/auth/login", undefined, { username: "admin", password: ADMIN_PASSWORD });
    expect(login.status, login.text).toBe(200);
    admin = login.body.token;
    const user = await api("POST", "/v1/admin/users", admin, { username: `cmp-${id}`, password: `pw-${randomBytes(8).toString("hex")}` });
    expect(user.status, user.text).toBe(201);
    const created = await api("POST", "/v1/admin/hosts", admin, { user_id: user.body.user.id });
    expect(created.status, created.text).toBe(202);
    expect(await waitForTask(admin, created.body.task_id)).toBe("succeeded");
    const rot = await api("POST", `/v1/admin/hosts/${created.body.host.id}/rotate-ssh-password`, admin);
    expect(rot.status, rot.text).toBe(200);
    host = { id: created.body.host.id, shortId: created.body.host.short_id, password: rot.body.ssh_password };

    // The proxy's persistent host key, from compose's Postgres: the client checks it strictly.
    const sql = postgres(`postgres://ccp:${PG_PASSWORD}@127.0.0.1:${ports.pg}/ccp`, { max: 1 });
    try {
      const [row] = await sql`select public_key from system_keys where name = 'ssh_proxy_host_key'`;
      pinProxyHostKey(String(row!.public_key));
    } finally {
      await sql.end();
    }

    const r = await ssh(host.shortId, host.password, `id -un && echo kept-${id} > ~/compose-proof`);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe("workspace");
  });

  it("a rebuild keeps home", async () => {
    const rb = await api("POST", `/v1/admin/hosts/${host.id}/rebuild`, admin, { mode: "preserve-home" });
    expect(rb.status, rb.text).toBe(202);
    expect(await waitForTask(admin, rb.body.task_id)).toBe("succeeded");
    const r = await waitUntil("ssh after the rebuild", 60_000, async () => {
      const res = await ssh(host.shortId, host.password, "cat ~/compose-proof");
      return res.code === 0 ? res : undefined;
    });
    expect(r.stdout.trim()).toBe(`kept-${id}`);
  });

  it("deleting the host and compose down -v leave no container or volume of this instance or project", async () => {
    const del = await api("DELETE", `/v1/admin/hosts/${host.id}?keep_home=false`, admin);
    expect(del.status, del.text).toBe(202);
    expect(await waitForTask(admin, del.body.task_id)).toBe("succeeded");
    await compose(["down", "-v", "--remove-orphans", "-t", "20"]);
    started = false;
    expect(instanceObjects(PREFIX)).toEqual({ containers: [], volumes: [] });
    expect(projectContainers()).toEqual([]);
    const volumes = execFileSync("docker", ["volume", "ls", "-q", "--filter", `label=com.docker.compose.project=${PROJECT}`], { encoding: "utf8" });
    expect(volumes.trim()).toBe("");
  });
});
