import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApiDeps } from "../../api/main.js";
import { createApp } from "../../api/app.js";
import { createDatabase } from "../../shared/db/client.js";
import { publishHeartbeat } from "../../shared/health/heartbeats.js";
import { redisKey } from "../../shared/redis.js";
import { createLogger } from "../../shared/logger.js";
import { createRedis } from "../../shared/redis.js";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { databaseUrlFor } from "../../shared/test/databases.js";
import { projectRoot } from "../../shared/paths.js";
import { VERSION } from "../../shared/version.js";

/** docs/operations.md#health against real Postgres and Redis, and real failures of each. */
let h: ApiHarness;
beforeAll(async () => {
  h = await createApiHarness();
});
afterAll(async () => {
  await h.close();
});

const beat = (workerId: string, dockerOk: boolean, ageSeconds = 0) =>
  publishHeartbeat(h.deps.redis, h.config.REDIS_PREFIX, {
    worker_id: workerId,
    engine_id: "default",
    docker_ok: dockerOk,
    at: new Date(Date.now() - ageSeconds * 1000).toISOString(),
  });

describe("GET /healthz", () => {
  it("names the running version, the one in package.json", async () => {
    const pkg = JSON.parse(readFileSync(join(projectRoot, "package.json"), "utf8")) as { version: string };
    const res = await h.request("GET", "/healthz");
    expect(res.body.version, res.text).toBe(pkg.version);
    expect(VERSION).toBe(pkg.version);
  });

  it("warns no_workers when no worker has a heartbeat", async () => {
    const res = await h.request("GET", "/healthz");
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({ status: "warning", version: VERSION, checks: { database: "ok", redis: "ok", agent: "no_workers" }, wireguard: "unknown" });
  });

  it("ignores heartbeats older than the freshness window", async () => {
    await beat("stale-worker", true, 60);
    const res = await h.request("GET", "/healthz");
    expect(res.body.checks.agent).toBe("no_workers");
  });

  it("reports docker_unreachable when fresh workers cannot reach Docker", async () => {
    await beat("w-no-docker", false);
    const res = await h.request("GET", "/healthz");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: "warning", version: VERSION, checks: { database: "ok", redis: "ok", agent: "docker_unreachable" }, wireguard: "unknown" });
  });

  it("is ok when a fresh worker reached Docker", async () => {
    await beat("w-docker", true);
    const res = await h.request("GET", "/healthz");
    expect(res.body).toEqual({ status: "ok", version: VERSION, checks: { database: "ok", redis: "ok", agent: "ok" }, wireguard: "unknown" });
    const ready = await h.request("GET", "/readyz");
    expect(ready.status).toBe(200);
  });

  it("shows the WireGuard implementation of the newest fresh heartbeat (docs/egress.md#wireguard-implementation)", async () => {
    await publishHeartbeat(h.deps.redis, h.config.REDIS_PREFIX, { worker_id: "w-old-wg", engine_id: "e", docker_ok: true, wireguard: "kernel", at: new Date(Date.now() - 2000).toISOString() });
    await publishHeartbeat(h.deps.redis, h.config.REDIS_PREFIX, { worker_id: "w-new-wg", engine_id: "e", docker_ok: true, wireguard: "userspace", at: new Date().toISOString() });
    // Heartbeats without the field (older workers, the tests above) do not count.
    const res = await h.request("GET", "/healthz");
    expect(res.body.wireguard, res.text).toBe("userspace");
  });

  it("is degraded (503) when the database is unreachable, without error text", async () => {
    const missing = createDatabase(databaseUrlFor(h.env, "ccp_database_that_does_not_exist"), { max: 1 });
    const deps = buildApiDeps(h.config, createLogger({ level: "error" }), { database: missing, redis: h.deps.redis, queues: h.queues });
    const res = await createApp(deps).request("/healthz");
    const body = await res.json();
    expect(res.status).toBe(503);
    expect(body).toMatchObject({ status: "degraded", checks: { database: "error", redis: "ok" } });
    expect(JSON.stringify(body)).not.toMatch(/does not exist|ECONN|postgres/i);
    expect((await createApp(deps).request("/readyz")).status).toBe(503);
    await missing.close();
  });

  it("is degraded (503) when Redis is unreachable", async () => {
    // Port 1 on loopback: nothing listens, so every command fails at once.
    const deadRedis = createRedis("redis://127.0.0.1:1");
    deadRedis.on("error", () => {});
    const deps = buildApiDeps(h.config, createLogger({ level: "error" }), { database: h.database, redis: deadRedis, queues: h.queues });
    const res = await createApp(deps).request("/healthz");
    const body = await res.json();
    expect(res.status).toBe(503);
    expect(body).toEqual({ status: "degraded", version: VERSION, checks: { database: "ok", redis: "error", agent: "no_workers" }, wireguard: "unknown" });
    deadRedis.disconnect();
  });

  it("answers 503 service_unavailable on API routes when Redis is down", async () => {
    const deadRedis = createRedis("redis://127.0.0.1:1");
    deadRedis.on("error", () => {});
    const deps = buildApiDeps(h.config, createLogger({ level: "error" }), { database: h.database, redis: deadRedis, queues: h.queues });
    const res = await createApp(deps).request("/v1/auth/login", {
      method: "POST",
      body: JSON.stringify({ username: "admin", password: "whatever-password" }),
    });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { code: string }).code).toBe("service_unavailable");
    deadRedis.disconnect();
  });
});

/**
 * Issue 10 §2: /healthz and /readyz are public, so what they cost must not grow with anything
 * tenants can make Redis hold (sessions, tickets, counters, heartbeats of dead workers). The cost
 * is measured as the Redis commands the api's own connection sends for one request, read with
 * MONITOR between two ECHO markers sent on that connection — never with a clock.
 */
describe("health checks cost O(1) Redis commands", () => {
  async function commandsOf(path: string): Promise<string[]> {
    const redis = h.deps.redis;
    const info = String(await redis.call("CLIENT", "INFO"));
    const addr = /(?:^|\s)addr=(\S+)/.exec(info)![1]!;
    const monitor = await createRedis(h.env.REDIS_URL ?? "redis://127.0.0.1:6379").monitor();
    const seen: string[][] = [];
    const start = `start-${randomBytes(6).toString("hex")}`;
    const end = `end-${randomBytes(6).toString("hex")}`;
    let ended: () => void = () => {};
    const endSeen = new Promise<void>((resolve) => (ended = resolve));
    monitor.on("monitor", (_time: string, args: string[], source: string) => {
      if (source !== addr) return;
      seen.push(args);
      if (args[0]?.toLowerCase() === "echo" && args[1] === end) ended();
    });
    try {
      await redis.echo(start);
      const res = await h.request("GET", path);
      expect(res.status, res.text).toBe(200);
      await redis.echo(end);
      await Promise.race([
        endSeen,
        new Promise((_, reject) => setTimeout(() => reject(new Error("end marker not seen by MONITOR")), 10_000)),
      ]);
    } finally {
      monitor.disconnect();
    }
    const from = seen.findIndex((a) => a[1] === start);
    const to = seen.findIndex((a) => a[1] === end);
    return seen.slice(from + 1, to).map((a) => a[0]!.toLowerCase());
  }

  it("the same commands with 1 and with 1,000 stale heartbeats and 1,000 other keys", async () => {
    await beat("w-fresh", true);
    const before = { healthz: await commandsOf("/healthz"), readyz: await commandsOf("/readyz") };

    const redis = h.deps.redis;
    const p = h.config.REDIS_PREFIX;
    const pipe = redis.pipeline();
    const longAgo = Date.now() - 3_600_000;
    for (let i = 0; i < 1000; i++) {
      // Heartbeats of 1,000 workers that died without removing theirs (in the index, and in the
      // one-key-per-worker layout of before), and 1,000 keys of other kinds.
      pipe.zadd(redisKey(p, "heartbeats", "at"), longAgo, `dead-${i}`);
      pipe.hset(redisKey(p, "heartbeats"), `dead-${i}`, JSON.stringify({ worker_id: `dead-${i}`, engine_id: "default", docker_ok: true, at: new Date(longAgo).toISOString() }));
      pipe.set(redisKey(p, "heartbeat", `dead-${i}`), "{}", "EX", 300);
      pipe.set(redisKey(p, "desktop", `session-${i}`), "x", "EX", 300);
    }
    await pipe.exec();
    const after = { healthz: await commandsOf("/healthz"), readyz: await commandsOf("/readyz") };

    expect(after).toEqual(before);
    // And what they are: no keyspace walk at all, a handful of commands.
    for (const cmds of [before.healthz, before.readyz]) {
      expect(cmds).not.toContain("scan");
      expect(cmds).not.toContain("keys");
      expect(cmds.length).toBeLessThanOrEqual(3);
    }
    // Readiness does not read workers at all.
    expect(before.readyz).toEqual(["ping"]);
    // The fresh worker is still seen among the dead ones.
    expect((await h.request("GET", "/healthz")).body.checks.agent).toBe("ok");
  });
});
