import { randomBytes, randomUUID } from "node:crypto";
import { Writable } from "node:stream";
import { type Job, Worker } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../shared/logger.js";
import { serveMetrics } from "../../shared/metrics/server.js";
import { QUEUE_NAMES } from "../../shared/queue/contracts.js";
import { createRedis } from "../../shared/redis.js";
import { type ApiHarness, createApiHarness, type TestUser } from "../../shared/test/api-harness.js";
import { buildDist, freePort, spawnLogged, waitUntil } from "../../shared/test/processes.js";
import { insertHostRow } from "../../shared/test/rows.js";
import { ssh, startTestSshd } from "../../shared/test/sshd-harness.js";
import { bareWorkerDeps } from "../../shared/test/worker-harness.js";
import type { WorkerDeps } from "../../worker/deps.js";
import { runTaskJob, type TaskProcessor } from "../../worker/tasks/runner.js";

/**
 * Observability (README "Observability"): the API's /metrics (admin only, or on a listener of its
 * own), its series, and one request id followed from the HTTP request to the task row and to the
 * worker's log lines for that task. Real Postgres, Redis and BullMQ; the task's work is a stand-in
 * (no Docker here: the worker's own endpoint is scraped in test/docker/metrics-endpoints.test.ts).
 */

let h: ApiHarness;
let admin: string;
let user: TestUser;
let redis: ReturnType<typeof createRedis>;
let bullConnection: ReturnType<typeof createRedis>;
let worker: Worker;
let workerDeps: WorkerDeps;
const workerLogs: string[] = [];

/** The stand-in's work: one line through the task's logger, as every processor writes them. */
const standIn: TaskProcessor = {
  plan: () => ["work"],
  async run(ctx) {
    await ctx.step("work", async () => {
      ctx.log.info("stand-in step ran");
    });
  },
};

beforeAll(async () => {
  h = await createApiHarness();
  admin = await h.adminToken();
  user = await h.createUser();
  redis = createRedis(h.env.REDIS_URL ?? "redis://127.0.0.1:6379", { name: "ccp-test-metrics" });
  bullConnection = createRedis(h.env.REDIS_URL ?? "redis://127.0.0.1:6379", { name: "ccp-test-metrics-bull", forBullmq: true });
  const sink = new Writable({
    write(chunk, _e, cb) {
      workerLogs.push(String(chunk));
      cb();
    },
  });
  workerDeps = { ...bareWorkerDeps(h, redis), logger: createLogger({ level: "debug" }, sink) };
  worker = new Worker(
    QUEUE_NAMES.hostOps,
    async (job: Job<{ taskId: string }>, token?: string) => runTaskJob(workerDeps, standIn, job, token),
    { connection: bullConnection, prefix: h.prefix, concurrency: 2 },
  );
});
afterAll(async () => {
  await worker?.close();
  redis?.disconnect();
  bullConnection?.disconnect();
  await h?.close();
});

const scrape = async () => {
  const res = await h.request("GET", "/metrics", { token: admin });
  expect(res.status, res.text).toBe(200);
  return res.text;
};

/** The value of one series (exact label set, in prom-client's order), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const logLines = (lines: string[]) =>
  lines.flatMap((l) => l.split("\n")).filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

describe("GET /metrics on the API listener", () => {
  it("needs an admin token: 401 without one, 403 with a user's", async () => {
    const none = await h.request("GET", "/metrics");
    expect(none.status, none.text).toBe(401);
    expect(none.body.code).toBe("unauthorized");
    const asUser = await h.request("GET", "/metrics", { token: user.token });
    expect(asUser.status, asUser.text).toBe(403);
    expect(asUser.body.code).toBe("forbidden");
    for (const r of [none, asUser]) expect(r.text).not.toContain("ccp_http_request_duration_seconds");
  });

  it("answers the Prometheus text format with process metrics and the build info", async () => {
    const res = await h.request("GET", "/metrics", { token: admin });
    expect(res.status, res.text).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(res.headers.get("x-request-id")).toBeTruthy();
    expect(res.text).toContain("# TYPE process_cpu_seconds_total counter");
    expect(res.text).toMatch(/^ccp_build_info\{version="[^"]+",process="api"\} 1$/m);
  });

  it("times requests by route template and status, never by raw path", async () => {
    const hostId = randomUUID();
    const missing = await h.request("GET", `/v1/admin/hosts/${hostId}`, { token: admin });
    expect(missing.status, missing.text).toBe(404);
    const marker = `nope${randomBytes(6).toString("hex")}`;
    expect((await h.request("GET", `/v1/${marker}`)).status).toBe(404);
    const text = await scrape();
    expect(
      sample(text, 'ccp_http_request_duration_seconds_count{method="GET",route="/v1/admin/hosts/{hostID}",status="404"}'),
      text,
    ).toBe(1);
    expect(sample(text, 'ccp_http_request_duration_seconds_count{method="GET",route="unmatched",status="404"}')).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/ccp_http_request_duration_seconds_bucket\{le="0\.005",method="GET",route="\/v1\/admin\/hosts\/\{hostID\}",status="404"\}/);
    expect(text).not.toContain(hostId);
    expect(text).not.toContain(marker);
  });

  it("reports hosts by status from the database, every status included", async () => {
    const before = await scrape();
    const base = (s: string) => sample(before, `ccp_hosts{status="${s}"}`) ?? NaN;
    expect(base("deleting"), before).toBe(base("deleting")); // present (a number), even when 0
    await insertHostRow(h.database.sql, { status: "stopped" });
    await insertHostRow(h.database.sql, { status: "stopped" });
    await insertHostRow(h.database.sql, { status: "failed" });
    const after = await scrape();
    expect(sample(after, 'ccp_hosts{status="stopped"}'), after).toBe(base("stopped") + 2);
    expect(sample(after, 'ccp_hosts{status="failed"}')).toBe(base("failed") + 1);
    expect(sample(after, 'ccp_hosts{status="deleting"}')).toBe(base("deleting"));
  });

  it("reports BullMQ jobs by queue and state", async () => {
    const text = await scrape();
    for (const queue of Object.values(QUEUE_NAMES)) {
      for (const state of ["waiting", "active", "delayed", "failed"]) {
        expect(sample(text, `ccp_queue_jobs{queue="${queue}",state="${state}"}`), `${queue} ${state}\n${text}`).toBeGreaterThanOrEqual(0);
      }
    }
    expect(sample(text, "ccp_desktop_sessions_open")).toBe(0);
    expect(sample(text, 'ccp_desktop_bytes_total{direction="in"}')).toBe(0);
  });

  it("reports each engine's own host-ops queue and how long ago its workers reached Docker", async () => {
    await h.database.sql`insert into engines (id, endpoint, last_seen_at) values ('metricseng', 'unix:///run/metricseng.sock', now() - interval '42 seconds')`;
    await h.queues.get("host-ops.metricseng").add("host.stop", { taskId: "00000000-0000-4000-8000-000000000001" }, { jobId: "m1" });
    const text = await scrape();
    expect(sample(text, 'ccp_queue_jobs{queue="host-ops.metricseng",state="waiting"}'), text).toBe(1);
    expect(sample(text, 'ccp_queue_jobs{queue="host-ops",state="waiting"}'), text).toBeGreaterThanOrEqual(0);
    const age = sample(text, 'ccp_engine_heartbeat_age_seconds{engine="metricseng"}');
    expect(age, text).toBeGreaterThanOrEqual(42);
    expect(age).toBeLessThan(3600);
    // An engine no worker ever reached has no age to report (the seeded default here).
    expect(sample(text, 'ccp_engine_heartbeat_age_seconds{engine="default"}')).toBeUndefined();
    await h.queues.get("host-ops.metricseng").obliterate({ force: true });
    await h.database.sql`delete from engines where id = 'metricseng'`;
  });

  it("counts the hosts a failed attestation blocked (docs/egress.md#attestation)", async () => {
    const before = sample(await scrape(), "ccp_egress_quarantined_hosts")!;
    const u = await h.createUser();
    const host = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } });
    expect(host.status, host.text).toBe(202);
    const egress = await h.request("POST", "/v1/admin/egress-ips", {
      token: admin,
      body: {
        label: "metrics-quarantine",
        ip_address: "203.0.113.123",
        tunnel_type: "proxy",
        proxy_config: { type: "socks", server: "203.0.113.24", server_port: 1080 },
        proxy_dns_server: "203.0.113.53",
      },
    });
    expect(egress.status, egress.text).toBe(201);
    await h.database.sql`insert into host_egress_bindings (host_id, egress_ip_id, quarantined_at, quarantine_code)
      values (${host.body.host.id}, ${egress.body.egress_ip.id}, now(), 'dns_leak')`;
    expect(sample(await scrape(), "ccp_egress_quarantined_hosts")).toBe(before + 1);
    await h.database.sql`update host_egress_bindings set quarantined_at = null where host_id = ${host.body.host.id}`;
    expect(sample(await scrape(), "ccp_egress_quarantined_hosts")).toBe(before);
  });
});

describe("METRICS_LISTEN_ADDR", () => {
  it("serves the same registry without a token on its own listener; nothing else there", async () => {
    const server = await serveMetrics(h.deps.metrics.registry, { host: "127.0.0.1", port: 0 }, h.deps.logger, "test");
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text).toContain('ccp_build_info{version="');
      expect(text).toContain("ccp_hosts{status=");
      const other = await fetch(`http://127.0.0.1:${server.port}/v1/admin/users`);
      expect(other.status).toBe(404);
      expect(((await other.json()) as { code: string }).code).toBe("not_found");
    } finally {
      await server.close();
    }
    // The main listener still asks for the admin token.
    expect((await h.request("GET", "/metrics")).status).toBe(401);
  });

  it("is wired by the api process: open there, admin-only on API_LISTEN_ADDR", async () => {
    buildDist();
    const [apiPort, metricsPort] = [await freePort(), await freePort()];
    const api = spawnLogged(process.execPath, ["dist/main.js", "api"], {
      ...process.env,
      ...h.env,
      API_LISTEN_ADDR: `127.0.0.1:${apiPort}`,
      METRICS_LISTEN_ADDR: `127.0.0.1:${metricsPort}`,
      LOG_LEVEL: "info",
    });
    try {
      const text = await waitUntil(`the metrics listener (${api.output().slice(-500)})`, 60_000, async () => {
        const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
        return res.status === 200 ? res.text() : undefined;
      });
      expect(text).toContain("ccp_http_request_duration_seconds");
      const main = await fetch(`http://127.0.0.1:${apiPort}/metrics`);
      expect(main.status).toBe(401);
    } finally {
      api.child.kill("SIGTERM");
      await api.exited;
    }
  });
});

describe("request ids", () => {
  it("echoes a well-formed X-Request-Id and puts it on every log line of the request", async () => {
    const id = `req-${randomBytes(6).toString("hex")}.1:a_b`;
    const from = h.logs.length;
    const res = await h.request("GET", "/v1/admin/users", { token: admin, headers: { "x-request-id": id } });
    expect(res.status, res.text).toBe(200);
    expect(res.headers.get("x-request-id")).toBe(id);
    const lines = logLines(h.logs.slice(from));
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(l.request_id, JSON.stringify(l)).toBe(id);
    expect(lines.some((l) => l.msg === "request" && l.route === "/v1/admin/users")).toBe(true);
  });

  it("replaces an id that is too long or not a plain token with a fresh UUID", async () => {
    for (const bad of ["a".repeat(129), "has space", 'quote"d', "semi;colon", "ünï"]) {
      const from = h.logs.length;
      const res = await h.request("GET", "/healthz", { headers: { "x-request-id": bad } });
      const got = res.headers.get("x-request-id");
      expect(got, bad).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(h.logs.slice(from).join("")).not.toContain(bad);
    }
    const maxLen = "b".repeat(128);
    expect((await h.request("GET", "/healthz", { headers: { "x-request-id": maxLen } })).headers.get("x-request-id")).toBe(maxLen);
  });

  it("follows an operation from the request to the task row, the task view and the worker's log lines", async () => {
    const id = `op-${randomBytes(8).toString("hex")}`;
    const host = await insertHostRow(h.database.sql, { status: "running" });
    const from = h.logs.length;
    const res = await h.request("POST", `/v1/admin/hosts/${host.id}/stop`, { token: admin, headers: { "x-request-id": id } });
    expect(res.status, res.text).toBe(202);
    const taskId = res.body.task_id as string;
    for (const l of logLines(h.logs.slice(from))) expect(l.request_id, JSON.stringify(l)).toBe(id);

    const [row] = await h.database.sql<{ request_id: string | null }[]>`select request_id from tasks where id = ${taskId}`;
    expect(row?.request_id).toBe(id);

    await waitUntil("the stand-in worker to finish the task", 30_000, async () => {
      const [t] = await h.database.sql<{ status: string }[]>`select status from tasks where id = ${taskId}`;
      return t?.status === "succeeded" || undefined;
    });
    const view = await h.request("GET", `/v1/admin/tasks/${taskId}`, { token: admin });
    expect(view.body.task.request_id, view.text).toBe(id);

    const taskLines = logLines(workerLogs).filter((l) => l.task_id === taskId);
    expect(taskLines.some((l) => l.msg === "stand-in step ran"), workerLogs.join("")).toBe(true);
    for (const l of taskLines) expect(l.request_id, JSON.stringify(l)).toBe(id);

    // The runner timed it: one succeeded host.stop on the worker's own registry.
    const text = await workerDeps.metrics.registry.metrics();
    expect(sample(text, 'ccp_task_duration_seconds_count{kind="host.stop",outcome="succeeded"}'), text).toBe(1);
  });

  it("records it on the tasks a request causes on the system's behalf (disabling a user stops its host)", async () => {
    const host = await insertHostRow(h.database.sql, { status: "running" });
    const id = `dis-${randomBytes(4).toString("hex")}`;
    const res = await h.request("PATCH", `/v1/admin/users/${host.userId}`, { token: admin, body: { status: "disabled" }, headers: { "x-request-id": id } });
    expect(res.status, res.text).toBe(200);
    const rows = await h.database.sql<{ request_id: string | null; requested_by: string }[]>`
      select request_id, requested_by from tasks where host_id = ${host.id}`;
    expect(rows).toEqual([{ request_id: id, requested_by: "system:user-disabled" }]);
  });
});

describe("the SSH proxy's metrics listener", () => {
  it("counts refused logins and open sessions", async () => {
    const s = await startTestSshd(h, { SSHD_METRICS_LISTEN_ADDR: "127.0.0.1:0" });
    try {
      expect(s.metricsPort).not.toBeNull();
      const get = async () => {
        const res = await fetch(`http://127.0.0.1:${s.metricsPort}/metrics`);
        expect(res.status).toBe(200);
        return res.text();
      };
      const before = await get();
      expect(before).toMatch(/^ccp_build_info\{version="[^"]+",process="sshd"\} 1$/m);
      expect(sample(before, "ccp_ssh_sessions_open")).toBe(0);
      expect(sample(before, 'ccp_ssh_bytes_total{direction="out"}')).toBe(0);
      const r = await ssh(s, { login: `nohost${randomBytes(3).toString("hex")}`, password: "wrong-password", args: ["true"] });
      expect(r.code).toBe(255);
      const after = await get();
      expect(sample(after, 'ccp_ssh_auth_total{method="password",result="failure"}'), after).toBeGreaterThanOrEqual(1);
      expect(sample(after, 'ccp_ssh_auth_total{method="password",result="success"}')).toBeUndefined();
    } finally {
      await s.stop();
    }
  });
});
