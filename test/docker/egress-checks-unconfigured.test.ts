import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { egressChecksAvailable } from "../../shared/health/heartbeats.js";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { waitUntil } from "../../shared/test/processes.js";
import { insertEgressRow } from "../../shared/test/rows.js";
import { docker, removeInstanceObjects, startTestWorker, waitForTask, type WorkerHarness } from "../../shared/test/worker-harness.js";
import { createRunningHost, gatewayOf, gatewayStatus } from "./egress-lab.js";

/**
 * A worker without the egress check variables (README "Deploying the egress check service
 * (checkd)"). Before, it refused to start; now it starts, runs hosts without an egress (blocked,
 * the isolation probe skipped: there is nothing to probe against), says so in its heartbeat so
 * the API refuses egress tests and bindings with 409, and refuses itself an egress test that was
 * queued before (egress_checks_not_configured; the egress's health is left as it was).
 * No lab needed: nothing here reaches an egress.
 */
let h: ApiHarness;
let w: WorkerHarness;
let admin: string;

// Empty values count as unset and override the developer's .env, which has them all.
const NO_CHECKS = {
  EGRESS_CHECK_URL: "",
  EGRESS_ECHO_URL: "",
  EGRESS_DNS_CANARY_DOMAIN: "",
  EGRESS_DNS_CANARY_API: "",
  EGRESS_DNS_CANARY_API_SECRET: "",
  EGRESS_CHECK_FORBIDDEN_RESOLVER: "",
  EGRESS_DEFAULT_DNS_SERVER: "",
};

beforeAll(async () => {
  h = await createApiHarness();
  admin = await h.adminToken();
});
afterAll(async () => {
  await w?.stop();
  if (h) removeInstanceObjects(h.prefix);
  await h?.close();
});

describe("a worker without egress check endpoints", () => {
  it("starts, and refuses an egress test queued before it came up, leaving the egress's health alone", async () => {
    const egressId = await insertEgressRow(h.database.sql, { health: "passing" });
    // No live worker yet: the API cannot know, so it accepts the test.
    const queued = await h.request("POST", `/v1/admin/egress-ips/${egressId}/test?async=true`, { token: admin });
    expect(queued.status, queued.text).toBe(202);

    w = await startTestWorker(h, NO_CHECKS);
    expect(w.config.EGRESS_CHECKS).toBeNull();
    const task = await waitForTask(h, queued.body.task_id as string);
    expect(task, JSON.stringify(task)).toMatchObject({ status: "failed", error_code: "egress_checks_not_configured" });
    expect(JSON.stringify(task.result)).toContain("EGRESS_CHECK_URL");
    const [row] = await h.database.sql<{ health: string }[]>`select health from egress_ips where id = ${egressId}`;
    expect(row!.health).toBe("passing");
    // It stopped before any container: no test gateway or probe was created.
    expect(docker(["ps", "-a", "-q", "--filter", `label=cloud-cli-proxy.task_id=${task.id}`])).toBe("");
  });

  it("publishes that it has no checks; the API then answers 409 egress_checks_not_configured", async () => {
    await waitUntil("the worker's heartbeat", 15_000, async () =>
      (await egressChecksAvailable(h.deps.redis, h.prefix, 15, new Date())) === false ? true : undefined,
    );
    const egressId = await insertEgressRow(h.database.sql);
    const test = await h.request("POST", `/v1/admin/egress-ips/${egressId}/test`, { token: admin });
    expect(test.status, test.text).toBe(409);
    expect(test.body).toMatchObject({ code: "egress_checks_not_configured" });
    expect(test.body.error).toContain("EGRESS_DNS_CANARY_API_SECRET");
    const user = await h.createUser();
    const create = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: user.id, egress_ip_id: egressId } });
    expect(create.status, create.text).toBe(409);
    expect(create.body.code).toBe("egress_checks_not_configured");
  });

  it("runs a host without an egress: blocked, its isolation probe skipped", async () => {
    const { hostId, task } = await createRunningHost(h);
    expect(task.status, JSON.stringify(task)).toBe("succeeded");
    expect(task.steps.find((s) => s.name === "verify_egress")?.status).toBe("skipped");
    expect(gatewayStatus(gatewayOf(hostId))).toMatchObject({ mode: "blocked", status: "ready" });
    // Binding an egress to it is refused like a test.
    const egressId = await insertEgressRow(h.database.sql);
    const bind = await h.request("POST", "/v1/admin/bindings", { token: admin, body: { host_id: hostId, egress_ip_id: egressId } });
    expect(bind.status, bind.text).toBe(409);
    expect(bind.body.code).toBe("egress_checks_not_configured");
  });
});
