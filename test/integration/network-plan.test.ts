import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseWorkerConfig } from "../../shared/config/worker.js";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import type { WorkerDeps } from "../../worker/deps.js";
import { TaskError } from "../../worker/tasks/task-error.js";
import { planForHost } from "../../worker/network/plan.js";

/** Mode selection (docs/egress.md#modes) on a real database, secrets stored by the egress service. */

let h: ApiHarness;
let admin: string;
const ctx = { mgmt: { src: "198.18.0.1", net: "198.18.0.0/24" }, underlayGateway: "203.0.113.1" };
const KEY = (n: number) => Buffer.alloc(32, n).toString("base64");

function depsWith(over: Record<string, string> = {}): WorkerDeps {
  const config = parseWorkerConfig({ ...h.env, ...over });
  return { ...(h.deps as unknown as WorkerDeps), db: h.deps.db, secrets: h.deps.secrets, config };
}

async function hostRow(): Promise<string> {
  const u = await h.createUser();
  const res = await h.request("POST", "/v1/admin/hosts", { token: admin, body: { user_id: u.id } });
  expect(res.status, res.text).toBe(202);
  return res.body.host.id;
}

async function egress(body: Record<string, unknown>): Promise<string> {
  const res = await h.request("POST", "/v1/admin/egress-ips", { token: admin, body });
  expect(res.status, res.text).toBe(201);
  return res.body.egress_ip.id;
}

async function bindRow(hostId: string, egressId: string) {
  const res = await h.request("POST", "/v1/admin/bindings", { token: admin, body: { host_id: hostId, egress_ip_id: egressId } });
  expect(res.status, res.text).toBe(201);
}

const code = async (p: Promise<unknown>) => {
  try {
    await p;
    return null;
  } catch (err) {
    return err instanceof TaskError ? err.code : String(err);
  }
};

beforeAll(async () => {
  h = await createApiHarness();
  admin = await h.adminToken();
});
afterAll(async () => {
  await h?.close();
});

describe("mode selection", () => {
  it("unbound: blocked by default, direct on opt-in (at a start only), refused with EGRESS_REQUIRED", async () => {
    const id = await hostRow();
    expect((await planForHost(depsWith(), { id }, "start", ctx)).config).toEqual({ mode: "blocked", mgmt: ctx.mgmt });
    const direct = await planForHost(depsWith({ EGRESS_UNBOUND_POLICY: "direct" }), { id }, "start", ctx);
    expect(direct.config).toEqual({ mode: "direct", mgmt: ctx.mgmt, underlayGateway: "203.0.113.1", dns: h.env.EGRESS_DEFAULT_DNS_SERVER });
    expect((await planForHost(depsWith({ EGRESS_UNBOUND_POLICY: "direct" }), { id }, "apply", ctx)).config.mode).toBe("blocked");
    expect(await code(planForHost(depsWith({ EGRESS_REQUIRED: "true" }), { id }, "start", ctx))).toBe("egress_binding_missing");
  });

  it("bound to an available WireGuard egress: wireguard, with the endpoint name resolved and pinned", async () => {
    const id = await hostRow();
    const e = await egress({
      label: "wg-plan",
      ip_address: "203.0.113.120",
      tunnel_type: "wireguard",
      wg_endpoint: "vpn.example.test:51820",
      wg_public_key: KEY(9),
      wg_preshared_key: KEY(8),
      wg_dns_server: "203.0.113.53",
      wg_peer_address: "198.51.100.2/32",
      wg_private_key: KEY(7),
    });
    await bindRow(id, e);
    const asked: string[] = [];
    const plan = await planForHost(depsWith(), { id }, "start", ctx, async (name) => {
      asked.push(name);
      return "203.0.113.20";
    });
    expect(asked).toEqual(["vpn.example.test"]);
    expect(plan.config).toMatchObject({
      mode: "wireguard",
      endpoint: "203.0.113.20",
      endpointPort: 51820,
      privateKey: KEY(7),
      peerPublicKey: KEY(9),
      presharedKey: KEY(8),
      allowedIps: "0.0.0.0/0",
      dns: "203.0.113.53",
      mtu: 1420,
    });
    expect(plan.egress).toEqual({ egressId: e, ipAddress: "203.0.113.120", allowedSources: ["203.0.113.120", "203.0.113.53"] });
    // A name that does not resolve fails the start (and the apply) with tunnel_setup_failed.
    const fail = planForHost(depsWith(), { id }, "start", ctx, async () => {
      throw new Error("ENOTFOUND");
    });
    expect(await code(fail)).toBe("tunnel_setup_failed");
  });

  it("bound to a proxy egress: the secrets come back; disabled → blocked (EGRESS_REQUIRED: refused at a start)", async () => {
    const id = await hostRow();
    const e = await egress({
      label: "ss-plan",
      ip_address: "203.0.113.121",
      tunnel_type: "proxy",
      proxy_config: { type: "shadowsocks", server: "203.0.113.21", server_port: 8388, method: "aes-256-gcm", password: "s3cret" },
      proxy_dns_server: "203.0.113.53",
    });
    await bindRow(id, e);
    const plan = await planForHost(depsWith(), { id }, "start", ctx);
    expect(plan.config).toMatchObject({ mode: "proxy", server: "203.0.113.21", dns: "203.0.113.53", outbound: { password: "s3cret" } });
    expect(plan.egress?.allowedSources).toEqual(["203.0.113.121", "203.0.113.21"]);
    const put = await h.request("PUT", `/v1/admin/egress-ips/${e}`, { token: admin, body: { status: "disabled" } });
    expect(put.status, put.text).toBe(200);
    const blocked = await planForHost(depsWith(), { id }, "start", ctx);
    expect(blocked).toEqual({ config: { mode: "blocked", mgmt: ctx.mgmt }, egress: null, boundEgressId: e });
    expect(await code(planForHost(depsWith({ EGRESS_REQUIRED: "true" }), { id }, "start", ctx))).toBe("egress_binding_missing");
    expect((await planForHost(depsWith({ EGRESS_REQUIRED: "true" }), { id }, "apply", ctx)).config.mode).toBe("blocked");
  });

  it("a quarantined binding (a failed attestation) plans blocked at every start and apply until it is lifted", async () => {
    const id = await hostRow();
    const e = await egress({
      label: "ss-quarantine",
      ip_address: "203.0.113.122",
      tunnel_type: "proxy",
      proxy_config: { type: "shadowsocks", server: "203.0.113.21", server_port: 8388, method: "aes-256-gcm", password: "s3cret" },
      proxy_dns_server: "203.0.113.53",
    });
    await bindRow(id, e);
    expect((await planForHost(depsWith(), { id }, "start", ctx)).config.mode).toBe("proxy");
    await h.database.sql`update host_egress_bindings set quarantined_at = now(), quarantine_code = 'dns_leak' where host_id = ${id}`;
    for (const at of ["start", "apply"] as const) {
      expect(await planForHost(depsWith(), { id }, at, ctx)).toEqual({ config: { mode: "blocked", mgmt: ctx.mgmt }, egress: null, boundEgressId: e });
    }
    // EGRESS_REQUIRED does not turn a quarantined host's start into a failure: it starts blocked.
    expect((await planForHost(depsWith({ EGRESS_REQUIRED: "true" }), { id }, "start", ctx)).config.mode).toBe("blocked");
    await h.database.sql`update host_egress_bindings set quarantined_at = null, quarantine_code = null where host_id = ${id}`;
    expect((await planForHost(depsWith(), { id }, "apply", ctx)).config.mode).toBe("proxy");
  });
});
