import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { docker, removeInstanceObjects, startTestWorker, waitForTask, type WorkerHarness } from "../../shared/test/worker-harness.js";
import { activeUpload, waitGatewayReady } from "../../worker/network/gateway.js";
import { renderGatewayFiles } from "../../worker/network/gateway-files.js";
import { ephemeralLabels } from "../../worker/network/probe.js";
import { runEgressChecks } from "../../worker/network/verify.js";
import {
  bind,
  createEgress,
  createRunningHost,
  execIn,
  gatewayOf,
  gatewayStatus,
  hostOf,
  type Lab,
  labUp,
  labWorkerEnv,
  underlayIp,
  until,
} from "./egress-lab.js";

/**
 * Verification outcomes at host tasks (docs/egress.md#verification, docs/architecture.md#host-flows): the start path in tunnel modes,
 * a wrong declared address failing closed, a disabled egress cutting the host off, and the leak
 * detector catching deliberately leaky gateways.
 */

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

async function events(hostId: string, type: string) {
  const r = await h.request("GET", `/v1/admin/events?host_id=${hostId}&type=${type}`, { token: admin });
  return r.body.events as { type: string; level: string; metadata: Record<string, unknown> }[];
}

describe("verify_egress at host tasks", () => {
  it("a stopped host bound to a WireGuard egress starts in WireGuard mode, verified", async () => {
    const { hostId } = await createRunningHost(h);
    const stop = await h.request("POST", `/v1/admin/hosts/${hostId}/stop`, { token: admin });
    expect((await waitForTask(h, stop.body.task_id)).status).toBe("succeeded");
    const wg = await createEgress(h, lab.wireguard.egress);
    const b = await bind(h, hostId, wg);
    expect(b.taskId, "a stopped host gets no apply task").toBeNull();
    const start = await h.request("POST", `/v1/admin/hosts/${hostId}/start`, { token: admin });
    const t = await waitForTask(h, start.body.task_id);
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    expect(t.steps.find((s: { name: string }) => s.name === "verify_egress").status).toBe("succeeded");
    console.log(`host.start in WireGuard mode: ${JSON.stringify(t.steps.map((s: { name: string; duration_ms: number }) => [s.name, s.duration_ms]))}`);
    expect(gatewayStatus(gatewayOf(hostId))).toMatchObject({ mode: "wireguard", status: "ready" });
    expect(execIn(hostOf(hostId), ["curl", "-s", "-m", "3", `http://${lab.echo.address}/ip`]).stdout).toBe(lab.wireguard.exit_ip);
    const passed = await events(hostId, "egress.verify.passed");
    expect(passed[0]?.metadata).toMatchObject({ mode: "wireguard", egress_ip_id: wg });
    // Stop again so the lab's client key is free for the other suites.
    const stop2 = await h.request("POST", `/v1/admin/hosts/${hostId}/stop`, { token: admin });
    expect((await waitForTask(h, stop2.body.task_id)).status).toBe("succeeded");
  });

  it("a wrong declared ip_address → egress_ip_mismatch: host failed, containers stopped, address unchanged", async () => {
    const { hostId } = await createRunningHost(h);
    const body = { ...lab.proxies.vmess.egress, label: "lab-vmess-wrong", ip_address: "203.0.113.99" };
    const id = await createEgress(h, body);
    const b = await bind(h, hostId, id);
    const t = await waitForTask(h, b.taskId!);
    expect(t.status).toBe("failed");
    expect(t.error_code).toBe("egress_ip_mismatch");
    expect(t.steps.map((s: { name: string; status: string }) => `${s.name}:${s.status}`)).toEqual([
      "write_config:succeeded",
      "reload_gateway:succeeded",
      "verify_egress:failed",
    ]);
    // The task is terminal first; failing the host closed follows (onFailure).
    const host = await until(
      async () => (await h.request("GET", `/v1/admin/hosts/${hostId}`, { token: admin })).body.host,
      (x) => x.status === "failed",
      15_000,
    );
    expect(host.status).toBe("failed");
    expect(docker(["inspect", "-f", "{{.State.Running}}", hostOf(hostId)])).toBe("false");
    expect(docker(["inspect", "-f", "{{.State.Running}}", gatewayOf(hostId)])).toBe("false");
    const egress = (await h.request("GET", `/v1/admin/egress-ips/${id}`, { token: admin })).body.egress_ip;
    expect(egress.ip_address).toBe("203.0.113.99");
    expect(egress.health).toBe("failing");
    const [failed] = await events(hostId, "egress.verify.failed");
    expect(failed?.level).toBe("error");
    expect(failed?.metadata).toMatchObject({
      mode: "proxy",
      error_code: "egress_ip_mismatch",
      checks: { exit_ip: { status: "fail", expected: "203.0.113.99", observed: lab.proxies.vmess.exit_ip } },
    });
    expect((await events(hostId, "host.failed"))[0]?.metadata).toMatchObject({ error_code: "egress_ip_mismatch" });
  });

  it("disabling the bound egress cuts a running host off (blocked), without a restart", async () => {
    const { hostId } = await createRunningHost(h);
    const id = await createEgress(h, lab.proxies.socks_udp.egress);
    const b = await bind(h, hostId, id);
    expect((await waitForTask(h, b.taskId!)).status).toBe("succeeded");
    expect(execIn(hostOf(hostId), ["curl", "-s", "-m", "3", `http://${lab.echo.address}/ip`]).stdout).toBe(lab.proxies.socks_udp.exit_ip);
    const startedAt = docker(["inspect", "-f", "{{.State.StartedAt}}", hostOf(hostId)]);
    const put = await h.request("PUT", `/v1/admin/egress-ips/${id}`, { token: admin, body: { status: "disabled" } });
    expect(put.status, put.text).toBe(200);
    expect(put.body.task_id).toBeTruthy();
    const t = await waitForTask(h, put.body.task_id);
    expect(t.status, JSON.stringify(t)).toBe("succeeded");
    expect(gatewayStatus(gatewayOf(hostId))).toMatchObject({ mode: "blocked", status: "ready" });
    expect(execIn(hostOf(hostId), ["curl", "-s", "-m", "2", `http://${lab.echo.address}/ip`]).code).not.toBe(0);
    expect(docker(["inspect", "-f", "{{.State.StartedAt}}", hostOf(hostId)])).toBe(startedAt);
    const applied = await events(hostId, "host.egress.applied");
    expect(applied[0]?.metadata).toEqual({ mode: "blocked", egress_ip_id: id });
  });
});

describe("the leak detector catches leaky gateways (self-test)", () => {
  /** A gateway configured for the lab's WireGuard egress, with its ruleset altered by `leak`. */
  async function leakyGateway(leak: (ruleset: string) => string) {
    const taskId = randomUUID();
    const name = `ccp-gwtest-${taskId}`;
    const files = renderGatewayFiles(
      {
        mode: "wireguard",
        mgmt: null,
        underlayGateway: lab.networks.inet.gateway,
        privateKey: lab.wireguard.egress.wg_private_key as string,
        peerPublicKey: lab.wireguard.public_key,
        presharedKey: null,
        endpoint: lab.wireguard.address,
        endpointPort: 51820,
        allowedIps: "0.0.0.0/0",
        address: "198.51.100.2/32",
        dns: lab.dns.address,
        mtu: 1420,
      },
      1,
    );
    files["ruleset.nft"] = leak(files["ruleset.nft"]);
    await w.deps.runtime.createGateway({
      name,
      image: w.config.GATEWAY_IMAGE,
      hostname: "leaky",
      labels: ephemeralLabels("gwtest", taskId),
      networks: [lab.networks.inet.name],
      files: [activeUpload(files)],
    });
    await w.deps.runtime.startContainer(name);
    await waitGatewayReady(w.deps, name, { generation: 1 });
    return { taskId, name };
  }

  const expectation = () => ({ egressId: randomUUID(), ipAddress: lab.wireguard.exit_ip, allowedSources: [lab.wireguard.exit_ip, lab.dns.address] });

  it("a UDP/53 hole to the forbidden resolver → dns_leak", async () => {
    const gw = await leakyGateway((r) => r.replace("    ip daddr 127.0.0.0/8 accept\n", `    ip daddr 127.0.0.0/8 accept\n    ip daddr ${lab.resolver.address} accept\n`));
    try {
      const v = await runEgressChecks(w.deps, { taskId: gw.taskId, gatewayName: gw.name, expectation: expectation(), underlay: [underlayIp(gw.name, lab.networks.inet.name), lab.networks.inet.gateway] });
      expect(v.error_code).toBe("dns_leak");
      expect(v.results.connectivity.status).toBe("pass");
      expect(v.results.exit_ip.status).toBe("pass");
      expect(v.results.dns_leak.error).toMatch(/forbidden resolver answered/);
    } finally {
      await w.deps.runtime.removeContainer(gw.name);
    }
  });

  it("the resolver routed around the tunnel → dns_leak with the underlay address seen", async () => {
    const gw = await leakyGateway((r) =>
      r.replace('    oif "lo" accept\n', `    oif "lo" accept\n    ip daddr ${lab.dns.address} udp dport 53 accept\n`),
    );
    try {
      execIn(gw.name, ["ip", "rule", "add", "to", lab.dns.address, "lookup", "main", "pref", "50"]);
      const gwIp = underlayIp(gw.name, lab.networks.inet.name);
      const v = await runEgressChecks(w.deps, { taskId: gw.taskId, gatewayName: gw.name, expectation: expectation(), underlay: [gwIp, lab.networks.inet.gateway] });
      expect(v.error_code).toBe("dns_leak");
      expect(v.results.dns_leak.resolvers_seen).toContain(gwIp);
      expect(v.results.exit_ip.status).toBe("pass");
    } finally {
      await w.deps.runtime.removeContainer(gw.name);
    }
  });
});
