import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { removeInstanceObjects, startTestWorker, waitForTask, type WorkerHarness } from "../../shared/test/worker-harness.js";
import { createEgress, type Lab, labUp, labWorkerEnv } from "./egress-lab.js";

/** `POST /v1/admin/egress-ips/{ipID}/test` through the API, a real worker and the lab (docs/api.md#egress-test-api). */
let lab: Lab;
let h: ApiHarness;
let w: WorkerHarness;
let admin: string;

beforeAll(async () => {
  lab = labUp();
  h = await createApiHarness();
  w = await startTestWorker(h, labWorkerEnv(lab));
  admin = await h.adminToken();
});

afterAll(async () => {
  await w?.stop();
  if (h) removeInstanceObjects(h.prefix);
  await h?.close();
});

const ss = () => lab.proxies.shadowsocks;

describe("egress test endpoint", () => {
  it("answers 200 with the verdict of a correct egress, stores last_test and health", async () => {
    const id = await createEgress(h, ss().egress);
    const res = await h.request("POST", `/v1/admin/egress-ips/${id}/test`, { token: admin });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({
      status: "passed",
      error_code: null,
      results: {
        connectivity: { status: "pass" },
        exit_ip: { status: "pass", expected: ss().exit_ip, observed: ss().exit_ip },
        dns_leak: { status: "pass" },
      },
    });
    expect(res.body.duration_ms).toBeLessThan(30_000);
    expect(res.body.results.dns_leak.resolvers_seen).toEqual([ss().exit_ip]);
    const get = await h.request("GET", `/v1/admin/egress-ips/${id}`, { token: admin });
    expect(get.body.egress_ip.last_test).toEqual(res.body);
    expect(get.body.egress_ip.health).toBe("passing");
  });

  it("a wrong declared address fails with egress_ip_mismatch and changes nothing", async () => {
    const body = { ...ss().egress, label: "mismatch", ip_address: "203.0.113.99" };
    const id = await createEgress(h, body);
    const res = await h.request("POST", `/v1/admin/egress-ips/${id}/test`, { token: admin });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({
      status: "failed",
      error_code: "egress_ip_mismatch",
      results: { exit_ip: { status: "fail", expected: "203.0.113.99", observed: ss().exit_ip } },
    });
    const get = await h.request("GET", `/v1/admin/egress-ips/${id}`, { token: admin });
    expect(get.body.egress_ip.ip_address).toBe("203.0.113.99");
    expect(get.body.egress_ip.health).toBe("failing");
  });

  it("?async=true answers 202 at once; concurrent requests join the same task", async () => {
    const id = await createEgress(h, { ...lab.proxies.vmess.egress });
    const [a, b] = await Promise.all([
      h.request("POST", `/v1/admin/egress-ips/${id}/test?async=true`, { token: admin }),
      h.request("POST", `/v1/admin/egress-ips/${id}/test?async=true`, { token: admin }),
    ]);
    expect(a.status, a.text).toBe(202);
    expect(b.status, b.text).toBe(202);
    expect(a.body.task_id).toBe(b.body.task_id);
    const task = await waitForTask(h, a.body.task_id);
    expect(task.kind).toBe("egress.test");
    expect(task.result).toMatchObject({ task_id: a.body.task_id, status: "passed" });
  });

  it("unknown or malformed ids are 404; a user token is 403; no token is 401", async () => {
    expect((await h.request("POST", "/v1/admin/egress-ips/00000000-0000-4000-8000-000000000000/test", { token: admin })).body.code).toBe(
      "egress_ip_not_found",
    );
    expect((await h.request("POST", "/v1/admin/egress-ips/nope/test", { token: admin })).status).toBe(404);
    const u = await h.createUser();
    const id = await createEgress(h, { ...lab.proxies.http.egress });
    expect((await h.request("POST", `/v1/admin/egress-ips/${id}/test`, { token: u.token })).status).toBe(403);
    expect((await h.request("POST", `/v1/admin/egress-ips/${id}/test`)).status).toBe(401);
    expect((await h.request("POST", `/v1/admin/egress-ips/${id}/test?async=maybe`, { token: admin })).status).toBe(400);
  });
});
