import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { docker, removeInstanceObjects, startTestWorker, waitForTask, type WorkerHarness } from "../../shared/test/worker-harness.js";
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
  sentinel,
  sshBanner,
  underlayIp,
  until,
} from "./egress-lab.js";

// An address of the lab's inet network that no server or gateway uses (servers sit below .80, the
// dynamic range starts at .128; test/lab/README.md): the drills' "other" source address.
const OTHER = "203.0.113.77";
const UNDO_NAT = `nft delete table ip drill 2>/dev/null; ip addr del ${OTHER}/24 dev eth0 2>/dev/null; true`;

/**
 * Continuous egress attestation (docs/egress.md#attestation), drilled against the lab: the proxy
 * server's exit address changes, the proxy starts sending DNS from an address that is not the
 * egress's, the WireGuard peer stops answering. Each must be caught by the first attestation that
 * starts after the fault, the host blocked at once (its SSH still answering, nothing leaving from
 * its gateway's own address), and traffic must resume by itself once the fault is undone.
 *
 * The interval is 10 s here (each binding due 7.5–8.5 s after its last check); the detection times
 * are printed, not asserted (docs: tests never depend on wall-clock thresholds): what is asserted
 * is that no attestation started after the fault passed.
 */

const INTERVAL = 10;
let lab: Lab;
let h: ApiHarness;
let w: WorkerHarness;
let admin: string;
const figures: string[] = [];

beforeAll(async () => {
  lab = labUp();
  h = await createApiHarness();
  // Checks of the local lab answer in well under a second; 5 s each keeps the stopped-peer drill
  // (two timed-out checks before the block) short.
  w = await startTestWorker(h, { ...labWorkerEnv(lab), EGRESS_ATTEST_INTERVAL_SECONDS: String(INTERVAL), EGRESS_CHECK_TIMEOUT_SECONDS: "5" });
  admin = await h.adminToken();
});

afterAll(async () => {
  // Undo every drill whatever happened: the lab is shared by the other egress suites.
  for (const c of [lab?.proxies.shadowsocks.container].filter(Boolean)) inNetns(c!, UNDO_NAT);
  spawnSync("docker", ["unpause", lab?.wireguard.container ?? "ccp-lab-wg"]);
  await w?.stop();
  if (h) removeInstanceObjects(h.prefix);
  await h?.close();
  if (figures.length) console.log(`attestation drills (interval ${INTERVAL} s):\n${figures.join("\n")}`);
});

/** A shell in a lab container's network namespace, with NET_ADMIN (the lab image has nft and ip). */
function inNetns(container: string, script: string): void {
  const r = spawnSync(
    "docker",
    ["run", "--rm", "--network", `container:${container}`, "--cap-add", "NET_ADMIN", "--entrypoint", "sh", "cloud-cli-proxy/lab:latest", "-c", script],
    { encoding: "utf8", timeout: 60_000 },
  );
  if (r.status !== 0) throw new Error(`netns script failed in ${container}: ${r.stderr}`);
}

interface Attestation {
  attested_at: string;
  duration_ms: number;
  verdict: "passed" | "failed";
  error_code: string | null;
  expected_ip: string;
  observed_ip: string | null;
  dns_sources: string[];
  action: "none" | "blocked" | "recovered";
}

async function attestations(hostId: string): Promise<Attestation[]> {
  const r = await h.request("GET", `/v1/admin/attestations?host_id=${hostId}&limit=100`, { token: admin });
  expect(r.status, r.text).toBe(200);
  return r.body.attestations as Attestation[];
}

/** The first attestation of the host that started at or after `t`, waited for (bounded). */
async function firstSince(hostId: string, t: Date, want: (a: Attestation) => boolean, what: string): Promise<Attestation> {
  const found = await until(
    async () => (await attestations(hostId)).filter((a) => new Date(a.attested_at) >= t),
    (rows) => rows.some(want),
    4 * INTERVAL * 1000 + 30_000,
    250,
  );
  const hit = found.find(want);
  if (!hit) throw new Error(`no ${what} for host ${hostId} since ${t.toISOString()}: ${JSON.stringify(found)}`);
  return hit;
}

async function managementAddress(hostId: string): Promise<string> {
  const [row] = await h.database.sql<{ a: string }[]>`select management_address as a from hosts where id = ${hostId}`;
  return row!.a;
}

const echo = (hostId: string) =>
  execIn(hostOf(hostId), ["curl", "-s", "-m", "3", `http://${lab.echo.address}/ip`], { user: "workspace", timeoutMs: 10_000 });

async function boundHost(egressBody: Record<string, unknown>): Promise<{ hostId: string; egressId: string }> {
  const { hostId } = await createRunningHost(h);
  const egressId = await createEgress(h, egressBody);
  const b = await bind(h, hostId, egressId);
  expect((await waitForTask(h, b.taskId!)).status).toBe("succeeded");
  return { hostId, egressId };
}

/**
 * One drill: the host attests clean, the fault goes in, the first attestation after it fails with
 * `code` and blocks the host; the fault goes out, an attestation recovers it.
 */
async function drill(name: string, hostId: string, exitIp: string, code: string, fault: () => void, undo: () => void) {
  // Attested clean first (since this drill began: an earlier drill's rows are history).
  const clean = await firstSince(hostId, new Date(), (a) => a.verdict === "passed", "passing attestation");
  expect(clean.observed_ip).toBe(exitIp);
  const gw = gatewayOf(hostId);
  const gwUnderlay = underlayIp(gw, lab.networks.inet.name);
  const t0 = new Date();
  fault();
  try {
    const failed = await firstSince(hostId, t0, (a) => a.verdict === "failed", "failed attestation");
    const detectedMs = new Date(failed.attested_at).getTime() - t0.getTime();
    const blockedMs = detectedMs + failed.duration_ms;
    // Nothing that started after the fault passed: the first attestation after it caught it.
    const after = (await attestations(hostId)).filter((a) => new Date(a.attested_at) >= t0);
    expect(after.filter((a) => a.verdict === "passed"), JSON.stringify(after)).toEqual([]);
    expect(failed.error_code).toBe(code);
    expect(failed.action).toBe("blocked");
    const ev = await h.request("GET", `/v1/admin/events?host_id=${hostId}&type=egress.attestation.failed`, { token: admin });
    expect(ev.body.events.length).toBeGreaterThan(0);
    // Blocked at once: the gateway is in blocked mode, the host reaches nothing, its sshd still answers.
    expect(gatewayStatus(gw).mode).toBe("blocked");
    expect(echo(hostId).code).not.toBe(0);
    expect(await sshBanner(await managementAddress(hostId))).toMatch(/^SSH-2\.0-/);
    const blockedAt = Date.now();
    undo();
    const recovered = await firstSince(hostId, new Date(blockedAt), (a) => a.action === "recovered", "recovered attestation");
    expect(recovered.verdict).toBe("passed");
    expect(gatewayStatus(gw).mode).not.toBe("blocked");
    expect(echo(hostId).stdout).toBe(exitIp);
    const rec = await h.request("GET", `/v1/admin/events?host_id=${hostId}&type=egress.attestation.recovered`, { token: admin });
    expect(rec.body.events.length).toBeGreaterThan(0);
    // Nothing reached the lab from the gateway's own underlay address meanwhile (the kill switch).
    const leaks = sentinel(t0, gwUnderlay);
    expect(leaks.leak, leaks.lines).toBe(false);
    figures.push(
      `  ${name}: first check after the fault began ${(detectedMs / 1000).toFixed(1)} s after it, host blocked ${(blockedMs / 1000).toFixed(1)} s after it (${code}); recovered ${((new Date(recovered.attested_at).getTime() - blockedAt) / 1000).toFixed(1)} s after it was undone`,
    );
  } finally {
    undo();
  }
}

describe("continuous egress attestation drills", () => {
  let ss: { hostId: string; egressId: string };
  let wg: { hostId: string; egressId: string };

  beforeAll(async () => {
    ss = await boundHost(lab.proxies.shadowsocks.egress);
    wg = await boundHost(lab.wireguard.egress);
  }, 180_000);

  it("the proxy server's exit address changes: caught, blocked, recovered", async () => {
    const c = lab.proxies.shadowsocks.container;
    await drill(
      "exit address changed (shadowsocks)",
      ss.hostId,
      lab.proxies.shadowsocks.exit_ip,
      "egress_ip_mismatch",
      () =>
        inNetns(
          c,
          `ip addr add ${OTHER}/24 dev eth0 && nft add table ip drill && nft add chain ip drill post '{ type nat hook postrouting priority 100; }' && nft add rule ip drill post oifname eth0 snat to ${OTHER}`,
        ),
      () => inNetns(c, UNDO_NAT),
    );
  }, 240_000);

  it("the proxy starts sending DNS from another address: caught as a DNS leak, blocked, recovered", async () => {
    const c = lab.proxies.shadowsocks.container;
    await drill(
      "DNS from another address (shadowsocks)",
      ss.hostId,
      lab.proxies.shadowsocks.exit_ip,
      "dns_leak",
      () =>
        inNetns(
          c,
          `ip addr add ${OTHER}/24 dev eth0 && nft add table ip drill && nft add chain ip drill post '{ type nat hook postrouting priority 100; }' && nft add rule ip drill post oifname eth0 meta l4proto '{ tcp, udp }' th dport 53 snat to ${OTHER}`,
        ),
      () => inNetns(c, UNDO_NAT),
    );
  }, 240_000);

  it("the WireGuard peer stops answering: caught, blocked, recovered", async () => {
    const c = lab.wireguard.container;
    await drill(
      "peer stopped (wireguard)",
      wg.hostId,
      lab.wireguard.exit_ip,
      "egress_unreachable",
      () => docker(["pause", c]),
      () => void spawnSync("docker", ["unpause", c]),
    );
  }, 240_000);

  it("the history is filterable and validated", async () => {
    const failed = await h.request("GET", `/v1/admin/attestations?egress_ip_id=${wg.egressId}&verdict=failed`, { token: admin });
    expect(failed.status).toBe(200);
    expect(failed.body.attestations.length).toBeGreaterThan(0);
    for (const a of failed.body.attestations) {
      expect(a.egress_ip_id).toBe(wg.egressId);
      expect(a.verdict).toBe("failed");
    }
    const bad = await h.request("GET", "/v1/admin/attestations?verdict=maybe", { token: admin });
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe("invalid_request");
  });
});
