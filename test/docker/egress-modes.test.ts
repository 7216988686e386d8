import { randomUUID } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { removeInstanceObjects, startTestWorker, waitForTask, type WorkerHarness } from "../../shared/test/worker-harness.js";
import { activeUpload, waitGatewayReady } from "../../worker/network/gateway.js";
import { renderGatewayFiles } from "../../worker/network/gateway-files.js";
import { ephemeralLabels } from "../../worker/network/probe.js";
import { runIsolationCheck } from "../../worker/network/verify.js";
import { createRunningHost, execIn, gatewayOf, gatewayStatus, hostOf, type Lab, labUp, labWorkerEnv, randomLabel, sshBanner, underlayIp } from "./egress-lab.js";

/**
 * Mode selection for unbound hosts (docs/egress.md#modes) against the lab: blocked by default (with
 * the isolation check of docs/egress.md#verification), direct on the operator's opt-in, refused with EGRESS_REQUIRED; and
 * the isolation check itself catching a gateway that lets traffic out.
 */

let lab: Lab;
let h: ApiHarness;
let w: WorkerHarness | undefined;

beforeAll(async () => {
  lab = labUp();
  h = await createApiHarness();
});
afterEach(async () => {
  await w?.stop();
  w = undefined;
});
afterAll(async () => {
  if (h) removeInstanceObjects(h.prefix);
  await h?.close();
});

describe("unbound hosts", () => {
  it("default policy: blocked, verified by the isolation check", async () => {
    w = await startTestWorker(h, labWorkerEnv(lab));
    const { hostId, task } = await createRunningHost(h);
    expect(task.status, JSON.stringify(task)).toBe("succeeded");
    expect(task.steps.find((s) => s.name === "verify_egress")?.status).toBe("succeeded");
    expect(gatewayStatus(gatewayOf(hostId))).toMatchObject({ mode: "blocked", status: "ready", engine: "none", error: null });
    expect(execIn(gatewayOf(hostId), ["ip", "route", "show", "default"]).stdout).toBe("");
    const ev = await h.request("GET", `/v1/admin/events?host_id=${hostId}&type=egress.verify.passed`, { token: await h.adminToken() });
    expect(ev.body.events[0].metadata).toMatchObject({
      mode: "blocked",
      checks: { check_url: { reached: false }, echo_url: { reached: false }, forbidden_resolver: { answered: false } },
    });
  });

  it("EGRESS_UNBOUND_POLICY=direct: Docker's route, DNS pinned, no verification", async () => {
    w = await startTestWorker(h, { ...labWorkerEnv(lab), EGRESS_UNBOUND_POLICY: "direct" });
    const { hostId, task } = await createRunningHost(h);
    expect(task.status, JSON.stringify(task)).toBe("succeeded");
    expect(task.steps.find((s) => s.name === "verify_egress")?.status).toBe("skipped");
    expect(gatewayStatus(gatewayOf(hostId))).toMatchObject({ mode: "direct", status: "ready", engine: "none" });
    const gwIp = underlayIp(gatewayOf(hostId), lab.networks.inet.name);
    expect(execIn(hostOf(hostId), ["curl", "-s", "-m", "3", `http://${lab.echo.address}/ip`]).stdout).toBe(gwIp);
    expect(execIn(hostOf(hostId), ["getent", "ahostsv4", `d${randomLabel()}.${lab.dns.domain}`]).stdout).toMatch(/^203\.0\.113\.10 /);
    expect(execIn(hostOf(hostId), ["dig", `@${lab.resolver.address}`, "+tries=1", "+time=2", `f${randomLabel()}.${lab.dns.domain}`]).code).not.toBe(0);
    // The control plane stays out of reach: the management network and the Docker host's underlay address.
    expect(execIn(hostOf(hostId), ["curl", "-s", "-m", "2", `http://${lab.networks.mgmt.gateway}:8080/`]).code).not.toBe(0);
    expect(execIn(hostOf(hostId), ["curl", "-s", "-m", "2", `http://${lab.networks.inet.gateway}:8080/`]).code).not.toBe(0);
    expect(await sshBanner(underlayIp(gatewayOf(hostId), lab.networks.mgmt.name))).toMatch(/^SSH-2\.0-/);
  });

  it("EGRESS_REQUIRED=true: the start fails egress_binding_missing, nothing left running", async () => {
    w = await startTestWorker(h, { ...labWorkerEnv(lab), EGRESS_REQUIRED: "true" });
    const { task } = await createRunningHost(h);
    expect(task.status).toBe("failed");
    expect((task as unknown as { error_code: string }).error_code).toBe("egress_binding_missing");
  });
});

describe("the isolation check", () => {
  it("fails for a gateway that lets traffic out (the host task would fail leak_detected)", async () => {
    w = await startTestWorker(h, labWorkerEnv(lab));
    const taskId = randomUUID();
    const name = `ccp-gwtest-${taskId}`;
    // A "blocked" gateway that in truth routes and accepts everything.
    const files = renderGatewayFiles({ mode: "direct", mgmt: null, underlayGateway: lab.networks.inet.gateway, dns: lab.dns.address }, 1);
    files["ruleset.nft"] = "flush ruleset\n";
    await w.deps.runtime.createGateway({
      name,
      image: w.config.GATEWAY_IMAGE,
      hostname: "leaky",
      labels: ephemeralLabels("gwtest", taskId),
      networks: [lab.networks.inet.name],
      files: [activeUpload(files)],
    });
    try {
      await w.deps.runtime.startContainer(name);
      await waitGatewayReady(w.deps, name, { generation: 1 });
      const r = await runIsolationCheck(w.deps, taskId, name);
      expect(r.passed).toBe(false);
      expect(r.checks.echo_url.reached).toBe(true);
      expect(r.checks.forbidden_resolver.answered).toBe(true);
    } finally {
      await w.deps.runtime.removeContainer(name);
    }
  });
});

// Reused: a host bound to a disabled egress at start is blocked (docs/egress.md#modes).
describe("a host bound to a disabled egress", () => {
  it("starts blocked", async () => {
    w = await startTestWorker(h, labWorkerEnv(lab));
    const { hostId } = await createRunningHost(h);
    const admin = await h.adminToken();
    const stop = await h.request("POST", `/v1/admin/hosts/${hostId}/stop`, { token: admin });
    expect((await waitForTask(h, stop.body.task_id)).status).toBe("succeeded");
    const created = await h.request("POST", "/v1/admin/egress-ips", { token: admin, body: lab.proxies.vmess.egress });
    expect(created.status, created.text).toBe(201);
    const id = created.body.egress_ip.id;
    expect((await h.request("POST", "/v1/admin/bindings", { token: admin, body: { host_id: hostId, egress_ip_id: id } })).status).toBe(201);
    expect((await h.request("PUT", `/v1/admin/egress-ips/${id}`, { token: admin, body: { status: "disabled" } })).status).toBe(200);
    const start = await h.request("POST", `/v1/admin/hosts/${hostId}/start`, { token: admin });
    const t = await waitForTask(h, start.body.task_id);
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    expect(gatewayStatus(gatewayOf(hostId)).mode).toBe("blocked");
    expect(execIn(hostOf(hostId), ["curl", "-s", "-m", "2", `http://${lab.echo.address}/ip`]).code).not.toBe(0);
  });
});
