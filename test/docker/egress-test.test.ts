import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { enqueueTask } from "../../shared/queue/queues.js";
import { insertTask } from "../../shared/services/tasks/create.js";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { docker, instanceObjects, removeInstanceObjects, startTestWorker, waitForTask, type WorkerHarness } from "../../shared/test/worker-harness.js";
import { bind, createEgress, createRunningHost, type Lab, type LabEgress, labUp, labWorkerEnv, until } from "./egress-lab.js";

/**
 * egress.test (docs/api.md#egress-test-api, docs/egress.md#egress-test) against the lab: an ephemeral gateway per run, the three
 * checks from a probe in its namespace, the result stored as last_test and as the task's result,
 * health and events, and nothing left behind.
 */

let lab: Lab;
let h: ApiHarness;
let w: WorkerHarness;
let admin: string;

beforeAll(async () => {
  lab = labUp();
  h = await createApiHarness();
  // With the spare egress-test gateway (on by default in production, off in the harness).
  w = await startTestWorker(h, { ...labWorkerEnv(lab), EGRESS_TEST_SPARE: "true" });
  admin = await h.adminToken();
});

afterAll(async () => {
  await w?.stop();
  if (h) removeInstanceObjects(h.prefix);
  await h?.close();
});

async function runTest(egressId: string) {
  const task = await insertTask(h.database.db, { kind: "egress.test", egressIpId: egressId, requestedBy: "system:test" });
  await enqueueTask(h.queues, task);
  return task.id;
}

const ephemeral = () => instanceObjects(h.prefix).containers.filter((n) => n.startsWith("ccp-gwtest-") || n.startsWith("ccp-probe-"));

const created: Record<string, string> = {};

describe("egress.test against the lab", () => {
  const cases: [string, () => LabEgress][] = [
    ["wireguard", () => lab.wireguard],
    ["shadowsocks", () => lab.proxies.shadowsocks],
    ["vmess", () => lab.proxies.vmess],
    ["trojan", () => lab.proxies.trojan],
    ["socks (dante, TCP-only)", () => lab.proxies.socks],
    ["socks with UDP", () => lab.proxies.socks_udp],
    ["http", () => lab.proxies.http],
  ];

  it.each(cases)("%s passes: exit IP and DNS sources are the egress address", async (_name, get) => {
    const e = get();
    const id = await createEgress(h, e.egress);
    created[_name] = id;
    const t0 = Date.now();
    const task = await waitForTask(h, await runTest(id));
    const wall = Date.now() - t0;
    expect(task.status, JSON.stringify(task)).toBe("succeeded");
    const result = task.result;
    expect(result).toMatchObject({
      task_id: task.id,
      status: "passed",
      error_code: null,
      results: {
        connectivity: { status: "pass" },
        exit_ip: { status: "pass", expected: e.exit_ip, observed: e.exit_ip },
        dns_leak: { status: "pass", resolvers_seen: [e.exit_ip] },
      },
    });
    expect(result.results.connectivity.latency_ms).toBeGreaterThanOrEqual(0);
    expect(result.duration_ms).toBeLessThan(30_000);
    console.log(`egress.test ${_name}: ${result.duration_ms} ms in the task, ${wall} ms wall`);
    const egress = (await h.request("GET", `/v1/admin/egress-ips/${id}`, { token: admin })).body.egress_ip;
    expect(egress.health).toBe("passing");
    expect(egress.last_test).toEqual(result);
    expect(ephemeral()).toEqual([]);
    const evs = (await h.request("GET", `/v1/admin/events?type=egress.*`, { token: admin })).body.events as { type: string; task_id: string; metadata: Record<string, unknown> }[];
    expect(evs.filter((x) => x.task_id === task.id).map((x) => x.type).sort()).toEqual(["egress.health.changed", "egress.test.passed"]);
  });

  it("a wrong declared ip_address fails egress_ip_mismatch; the result is the task's result", async () => {
    const id = await createEgress(h, { ...lab.proxies.trojan.egress, label: "trojan-wrong", ip_address: "203.0.113.97" });
    const task = await waitForTask(h, await runTest(id));
    expect(task.status).toBe("failed");
    expect(task.error_code).toBe("egress_ip_mismatch");
    expect(task.result).toMatchObject({
      status: "failed",
      error_code: "egress_ip_mismatch",
      results: {
        connectivity: { status: "pass" },
        exit_ip: {
          status: "fail",
          expected: "203.0.113.97",
          observed: lab.proxies.trojan.exit_ip,
          error: `exit IP ${lab.proxies.trojan.exit_ip} does not match the declared ip_address 203.0.113.97`,
        },
      },
    });
    const egress = (await h.request("GET", `/v1/admin/egress-ips/${id}`, { token: admin })).body.egress_ip;
    expect(egress.ip_address).toBe("203.0.113.97");
    expect(egress.health).toBe("failing");
    expect(ephemeral()).toEqual([]);
  });

  it("a wrong password: nothing gets through → egress_unreachable, within the time bound", async () => {
    const body = lab.proxies.shadowsocks.egress as { proxy_config: Record<string, unknown> };
    const id = await createEgress(h, { ...body, label: "ss-wrong", ip_address: "203.0.113.98", proxy_config: { ...body.proxy_config, password: "not-the-password" } });
    const task = await waitForTask(h, await runTest(id));
    expect(task.status).toBe("failed");
    expect(task.error_code).toBe("egress_unreachable");
    expect(task.result.results.connectivity).toMatchObject({ status: "fail", latency_ms: null });
    expect(task.result.results.exit_ip).toMatchObject({ status: "fail", observed: null });
    expect(task.result.duration_ms).toBeLessThan(30_000);
    console.log(`egress.test unreachable: ${task.result.duration_ms} ms`);
    expect(ephemeral()).toEqual([]);
  });

  it("a WireGuard egress bound to a running host is tested through the host's own gateway", async () => {
    const { hostId } = await createRunningHost(h);
    const id = created.wireguard!;
    const b = await bind(h, hostId, id);
    expect((await waitForTask(h, b.taskId!)).status).toBe("succeeded");
    const gwStarted = docker(["inspect", "-f", "{{.State.StartedAt}}", `ccp-gw-${hostId}`]);
    const task = await waitForTask(h, await runTest(id));
    expect(task.status, JSON.stringify(task)).toBe("succeeded");
    expect(task.steps.find((s: { name: string }) => s.name === "start_gateway").status).toBe("skipped");
    expect(task.result.results.exit_ip.observed).toBe(lab.wireguard.exit_ip);
    // The host was not touched.
    expect(docker(["inspect", "-f", "{{.State.StartedAt}}", `ccp-gw-${hostId}`])).toBe(gwStarted);
    expect((await h.request("GET", `/v1/admin/hosts/${hostId}`, { token: admin })).body.host.status).toBe("running");
    const stop = await h.request("POST", `/v1/admin/hosts/${hostId}/stop`, { token: admin });
    expect((await waitForTask(h, stop.body.task_id)).status).toBe("succeeded");
  });

  it("takes the spare gateway (EGRESS_TEST_SPARE): it becomes the test's gateway, and a new spare is made once the test is done", async () => {
    const spares = () => instanceObjects(h.prefix).containers.filter((n) => n.startsWith("ccp-gwspare-"));
    const ready = await until(
      async () => {
        w.deps.testSpare!.refill();
        await w.deps.testSpare!.settled();
        return spares();
      },
      (v) => v.length === 1,
      60_000,
    );
    expect(ready).toHaveLength(1);
    const spareId = docker(["inspect", "-f", "{{.Id}}", ready[0]!]);
    const since = Math.floor(Date.now() / 1000) - 1;
    const id = created["shadowsocks"] ?? (await createEgress(h, lab.proxies.shadowsocks.egress));
    const task = await waitForTask(h, await runTest(id));
    expect(task.status, JSON.stringify(task)).toBe("succeeded");
    expect(task.result).toMatchObject({ status: "passed", results: { exit_ip: { observed: lab.proxies.shadowsocks.exit_ip } } });
    // Docker's own record: the spare's container was renamed to this test's gateway, then removed
    // (the window ends a second from now: `docker events` returns once it has passed).
    const events = docker(["events", "--since", String(since), "--until", String(Math.ceil(Date.now() / 1000) + 1), "--filter", `container=${spareId}`, "--format", "{{.Action}} {{.Actor.Attributes.name}}"]);
    expect(events).toContain(`rename ccp-gwtest-${task.id}`);
    expect(events).toMatch(/destroy /);
    expect(ephemeral()).toEqual([]);
    // The next spare: another container, made after the test.
    const next = await until(async () => spares(), (v) => v.length === 1, 60_000);
    expect(next).toHaveLength(1);
    expect(docker(["inspect", "-f", "{{.Id}}", next[0]!])).not.toBe(spareId);
  });

  it("a cancel while the checks run: canceled, containers removed, no result stored", async () => {
    const body = lab.proxies.http.egress as { proxy_config: Record<string, unknown> };
    // Port 1 of the http server: connections are refused, so the checks run to their timeouts.
    const id = await createEgress(h, { ...body, label: "http-dead", ip_address: "203.0.113.95", proxy_config: { ...body.proxy_config, server_port: 1 } });
    const taskId = await runTest(id);
    await until(async () => (await h.request("GET", `/v1/admin/tasks/${taskId}`, { token: admin })).body.task.steps?.[1]?.status, (s) => s === "running", 15_000, 100);
    const c = await h.request("POST", `/v1/admin/tasks/${taskId}/cancel`, { token: admin });
    expect(c.status, c.text).toBe(202);
    const task = await waitForTask(h, taskId);
    expect(task.status).toBe("canceled");
    expect(task.result).toBeNull();
    const egress = (await h.request("GET", `/v1/admin/egress-ips/${id}`, { token: admin })).body.egress_ip;
    expect(egress.last_test).toBeNull();
    expect(egress.health).toBe("unknown");
    expect(ephemeral()).toEqual([]);
  });
});
