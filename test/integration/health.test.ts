import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApiDeps } from "../../api/main.js";
import { createApp } from "../../api/app.js";
import { createDatabase } from "../../shared/db/client.js";
import { publishHeartbeat } from "../../shared/health/heartbeats.js";
import { createLogger } from "../../shared/logger.js";
import { createRedis } from "../../shared/redis.js";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { databaseUrlFor } from "../../shared/test/databases.js";

/** behaviour.md §8.9 against real Postgres and Redis, and real failures of each. */
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
  it("warns no_workers when no worker has a heartbeat", async () => {
    const res = await h.request("GET", "/healthz");
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({ status: "warning", checks: { database: "ok", redis: "ok", agent: "no_workers" } });
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
    expect(res.body).toEqual({ status: "warning", checks: { database: "ok", redis: "ok", agent: "docker_unreachable" } });
  });

  it("is ok when a fresh worker reached Docker", async () => {
    await beat("w-docker", true);
    const res = await h.request("GET", "/healthz");
    expect(res.body).toEqual({ status: "ok", checks: { database: "ok", redis: "ok", agent: "ok" } });
    const ready = await h.request("GET", "/readyz");
    expect(ready.status).toBe(200);
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
    expect(body).toEqual({ status: "degraded", checks: { database: "ok", redis: "error", agent: "no_workers" } });
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
