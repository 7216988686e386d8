import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { egressChecksAvailable, type Heartbeat, publishHeartbeat, removeHeartbeat } from "../../shared/health/heartbeats.js";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { insertEgressRow, insertHostRow } from "../../shared/test/rows.js";

/**
 * Egress tests, bindings and hosts created with an egress need a worker that can verify the egress
 * (README "Deploying the egress check service (checkd)"). The API learns it from the workers'
 * heartbeats: 409 egress_checks_not_configured, naming the variables, only while every live worker
 * says it has no check endpoints. Heartbeats are published here directly (the real worker's own is
 * covered by test/docker/egress-checks-unconfigured.test.ts).
 */
let h: ApiHarness;
let admin: string;

const beat = (id: string, egressChecks: boolean | undefined): Heartbeat => ({
  worker_id: id,
  engine_id: "default",
  docker_ok: true,
  ...(egressChecks === undefined ? {} : { egress_checks: egressChecks }),
  at: new Date().toISOString(),
});

beforeAll(async () => {
  h = await createApiHarness();
  admin = await h.adminToken();
});
afterAll(async () => {
  await h?.close();
});
beforeEach(async () => {
  for (const id of ["w-without", "w-with", "w-old"]) await removeHeartbeat(h.deps.redis, h.prefix, id);
});

const sql = () => h.database.sql;

async function attempts() {
  const user = await h.createUser();
  const egressId = await insertEgressRow(sql());
  const host = await insertHostRow(sql(), { status: "running" });
  return {
    test: await h.request("POST", `/v1/admin/egress-ips/${egressId}/test?async=true`, { token: admin }),
    bind: await h.request("POST", "/v1/admin/bindings", { token: admin, body: { host_id: host.id, egress_ip_id: egressId } }),
    create: await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: user.id, egress_ip_id: await insertEgressRow(sql()) } }),
  };
}

describe("egress checks not configured on any live worker", () => {
  it("answers 409 egress_checks_not_configured, naming the variables, to tests, bindings and hosts with an egress", async () => {
    await publishHeartbeat(h.deps.redis, h.prefix, beat("w-without", false));
    expect(await egressChecksAvailable(h.deps.redis, h.prefix, 15, new Date())).toBe(false);
    const r = await attempts();
    for (const [what, res] of Object.entries(r)) {
      expect(res.status, `${what}: ${res.text}`).toBe(409);
      expect(res.body.code, what).toBe("egress_checks_not_configured");
      for (const v of ["EGRESS_CHECK_URL", "EGRESS_ECHO_URL", "EGRESS_DNS_CANARY_DOMAIN", "EGRESS_DNS_CANARY_API", "EGRESS_DNS_CANARY_API_SECRET", "EGRESS_CHECK_FORBIDDEN_RESOLVER"]) {
        expect(res.body.error, `${what} names ${v}`).toContain(v);
      }
    }
    // Nothing was created on the way to the refusal.
    const [tasks] = await sql()<{ n: number }[]>`select count(*)::int as n from tasks where kind in ('egress.test', 'host.apply-egress', 'host.create')`;
    expect(tasks!.n).toBe(0);
    const [bindings] = await sql()<{ n: number }[]>`select count(*)::int as n from host_egress_bindings`;
    expect(bindings!.n).toBe(0);
  });

  it("a host without an egress is still created", async () => {
    await publishHeartbeat(h.deps.redis, h.prefix, beat("w-without", false));
    const user = await h.createUser();
    const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: user.id } });
    expect(res.status, res.text).toBe(202);
  });
});

describe("when a live worker can check", () => {
  it("goes through if any live worker has the checks, or the record predates the field", async () => {
    await publishHeartbeat(h.deps.redis, h.prefix, beat("w-without", false));
    await publishHeartbeat(h.deps.redis, h.prefix, beat("w-with", true));
    let r = await attempts();
    expect([r.test.status, r.bind.status, r.create.status], JSON.stringify(r.bind.body)).toEqual([202, 201, 202]);

    await removeHeartbeat(h.deps.redis, h.prefix, "w-with");
    await publishHeartbeat(h.deps.redis, h.prefix, beat("w-old", undefined)); // a worker from before the field
    r = await attempts();
    expect([r.test.status, r.bind.status, r.create.status]).toEqual([202, 201, 202]);
  });

  it("goes through with no live worker at all: the worker that takes the task decides", async () => {
    expect(await egressChecksAvailable(h.deps.redis, h.prefix, 15, new Date())).toBeNull();
    const r = await attempts();
    expect([r.test.status, r.bind.status, r.create.status]).toEqual([202, 201, 202]);
  });
});
