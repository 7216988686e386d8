import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { runReconcile } from "../../worker/schedulers/reconcile.js";
import { docker, removeInstanceObjects, startTestWorker, waitForTask, type WorkerHarness } from "../../shared/test/worker-harness.js";
import {
  bind,
  canary,
  createEgress,
  createRunningHost,
  execIn,
  gatewayOf,
  gatewayStatus,
  hostOf,
  type Lab,
  labUp,
  labWorkerEnv,
  randomLabel,
  sentinel,
  sshBanner,
  unbind,
  underlayIp,
  until,
} from "./egress-lab.js";

/**
 * The egress data plane end to end against the test lab (docs/egress.md#data-plane): a running
 * host is bound live (host.apply-egress) to a WireGuard egress, then to proxy egresses; from inside
 * the host its traffic leaves with the egress address, DNS reaches the canary only from the
 * egress, the forbidden resolver never answers, and an egress outage blocks everything (no leak
 * in the lab's logs from the gateway's underlay address) while SSH keeps working.
 */

let lab: Lab;
let h: ApiHarness;
let w: WorkerHarness;
let hostId: string;
let gwIp: string;
let mgmtIp: string;
const started = new Date();
const ids: Record<string, string> = {};

beforeAll(async () => {
  lab = labUp();
  h = await createApiHarness();
  w = await startTestWorker(h, labWorkerEnv(lab));
  ids.wg = await createEgress(h, lab.wireguard.egress);
  for (const k of ["shadowsocks", "http", "socks_udp"] as const) ids[k] = await createEgress(h, lab.proxies[k].egress);
  const { hostId: id, task } = await createRunningHost(h);
  expect(task.status, JSON.stringify(task)).toBe("succeeded");
  hostId = id;
  gwIp = underlayIp(gatewayOf(hostId), lab.networks.inet.name);
  mgmtIp = underlayIp(gatewayOf(hostId), lab.networks.mgmt.name);
});

afterAll(async () => {
  // Whatever happened, the lab's servers run again for the next suite.
  execIn("ccp-lab-wg", ["ip", "link", "set", "wg0", "up"]);
  for (const c of ["ccp-lab-ss", "ccp-lab-http"]) docker(["start", c]);
  await w?.stop();
  if (h) removeInstanceObjects(h.prefix);
  await h?.close();
});

const hostCurl = (url: string, seconds = 3) =>
  execIn(hostOf(hostId), ["curl", "-s", "-m", String(seconds), url], { user: "workspace", timeoutMs: (seconds + 5) * 1000 });

/** A lookup through the host's resolver file (glibc), and the canary's sources for it. */
async function hostLookup(): Promise<{ name: string; answer: string; sources: string[] }> {
  const name = `h${randomLabel()}.${lab.dns.domain}`;
  const r = execIn(hostOf(hostId), ["timeout", "4", "getent", "ahostsv4", name], { user: "workspace" });
  const sources = await until(() => canary(lab, name), (s) => s.length > 0, 2000, 100);
  return { name, answer: r.stdout.split(/\s+/)[0] ?? "", sources };
}

async function applyTask(taskId: string | null) {
  expect(taskId, "a live host gets a host.apply-egress task").toBeTruthy();
  const t = await waitForTask(h, taskId!);
  expect(t.status, JSON.stringify(t)).toBe("succeeded");
  expect(t.steps.map((s: { name: string; status: string }) => `${s.name}:${s.status}`)).toEqual([
    "write_config:succeeded",
    "reload_gateway:succeeded",
    "verify_egress:succeeded",
  ]);
  return t;
}

describe("egress data plane against the lab", () => {
  it("an unbound host is blocked: no route, no DNS, loopback resolver; SSH works", async () => {
    expect(gatewayStatus(gatewayOf(hostId))).toMatchObject({ mode: "blocked", status: "ready", engine: "none" });
    expect(execIn(hostOf(hostId), ["cat", "/etc/resolv.conf"]).stdout).toBe("nameserver 127.0.0.1");
    expect(hostCurl(`http://${lab.echo.address}/ip`).code).not.toBe(0);
    expect(await sshBanner(mgmtIp)).toMatch(/^SSH-2\.0-/);
  });

  let wgBinding: string;
  it("binding a WireGuard egress applies it live: TCP, UDP and DNS leave as the egress address", async () => {
    const t0 = Date.now();
    const b = await bind(h, hostId, ids.wg!);
    wgBinding = b.bindingId;
    await applyTask(b.taskId);
    console.log(`apply to wireguard: ${Date.now() - t0} ms`);
    expect(gatewayStatus(gatewayOf(hostId))).toMatchObject({ mode: "wireguard", status: "ready" });
    expect(hostCurl(`http://${lab.echo.address}/ip`).stdout).toBe(lab.wireguard.exit_ip);
    const udp = execIn(hostOf(hostId), ["sh", "-c", `echo x | nc -u -w 2 ${lab.echo.address} ${lab.echo.udp_port}`], { user: "workspace" });
    expect(udp.stdout).toBe(lab.wireguard.exit_ip);
    const dns = await hostLookup();
    expect(dns.answer).toBe(lab.echo.address);
    expect(dns.sources).toEqual([lab.wireguard.exit_ip]);
    const egress = await h.request("GET", `/v1/admin/egress-ips/${ids.wg}`, { token: await h.adminToken() });
    expect(egress.body.egress_ip.health).toBe("passing");
  });

  it("the forbidden resolver never answers the host, and a rewritten resolver file gets nothing", async () => {
    const forbidden = execIn(hostOf(hostId), ["dig", `@${lab.resolver.address}`, "+tries=1", "+time=2", `f${randomLabel()}.${lab.dns.domain}`]);
    expect(forbidden.code).not.toBe(0);
    expect(forbidden.stdout).toMatch(/no servers could be reached|timed out/);
    // Root in the host points the resolver file elsewhere: lookups fail, nothing leaks (docs/egress.md#data-plane).
    const r = execIn(hostOf(hostId), ["sh", "-c", `printf 'nameserver ${lab.resolver.address}\\n' > /etc/resolv.conf; getent ahostsv4 r${randomLabel()}.${lab.dns.domain}; echo rc=$?`]);
    expect(r.stdout).toMatch(/rc=2$/);
    // The supervisor's resolver file comes back with the next apply; put it back by hand here.
    execIn(hostOf(hostId), ["sh", "-c", `printf 'nameserver ${lab.wireguard.egress.wg_dns_server as string}\\n' > /etc/resolv.conf`]);
  });

  it("root in the host cannot touch routes, rules or the ruleset", () => {
    for (const argv of [["ip", "route", "add", "10.9.9.0/24", "dev", "lo"], ["ip", "rule", "del", "pref", "200"], ["nft", "flush", "ruleset"]]) {
      const r = execIn(hostOf(hostId), argv);
      expect(r.code, argv.join(" ")).not.toBe(0);
      expect(`${r.stderr}${r.stdout}`, argv.join(" ")).toMatch(/Operation not permitted|command not found|not found/);
    }
    expect(execIn(hostOf(hostId), ["cat", "/proc/sys/net/ipv6/conf/all/disable_ipv6"]).stdout).toBe("1");
    expect(hostCurl("http://169.254.169.254/", 2).code).not.toBe(0);
    // Binding to the underlay interface does not get around the tunnel.
    const ifname = execIn(hostOf(hostId), ["sh", "-c", `ip -o -4 addr show | awk '$4 ~ /^${gwIp.replace(/\./g, "\\.")}\\// { print $2 }'`]).stdout;
    expect(ifname).toMatch(/^eth\d$/);
    expect(execIn(hostOf(hostId), ["curl", "-s", "-m", "2", "--interface", ifname, `http://${lab.echo.address}/ip`], { user: "workspace" }).code).not.toBe(0);
    // No IPv6, no management network (the Docker host's API, another host's sshd).
    expect(hostCurl("http://[2001:db8::10]/", 2).code).not.toBe(0);
    expect(hostCurl(`http://${lab.networks.mgmt.gateway}:8080/`, 2).code).not.toBe(0);
    expect(execIn(hostOf(hostId), ["nc", "-z", "-w", "2", lab.networks.mgmt.gateway, "22"]).code).not.toBe(0);
    // No secret in either container's environment or command line.
    for (const c of [gatewayOf(hostId), hostOf(hostId)]) {
      const cfg = docker(["inspect", "-f", "{{json .Config.Env}} {{json .Config.Cmd}} {{json .Config.Entrypoint}}", c]);
      expect(cfg).not.toContain(lab.wireguard.egress.wg_private_key as string);
    }
  });

  it("WireGuard peer down → the host is blocked, SSH works; back up → traffic resumes", async () => {
    execIn("ccp-lab-wg", ["ip", "link", "set", "wg0", "down"]);
    try {
      expect(hostCurl(`http://${lab.echo.address}/ip`, 3).code).not.toBe(0);
      expect(await sshBanner(mgmtIp)).toMatch(/^SSH-2\.0-/);
    } finally {
      execIn("ccp-lab-wg", ["ip", "link", "set", "wg0", "up"]);
    }
    const back = await until(() => hostCurl(`http://${lab.echo.address}/ip`, 2).stdout, (s) => s === lab.wireguard.exit_ip, 15_000, 250);
    expect(back).toBe(lab.wireguard.exit_ip);
  });

  it("pkill wireguard-go in the gateway: blocked during the gap, back within about 2 s", async () => {
    const before = gatewayStatus(gatewayOf(hostId)).engine_restarts;
    const t0 = Date.now();
    execIn(gatewayOf(hostId), ["pkill", "wireguard-go"]);
    const s = await until(() => gatewayStatus(gatewayOf(hostId)), (x) => x.engine_restarts === before + 1 && x.status === "ready", 5000, 100);
    expect(s.engine_restarts).toBe(before + 1);
    const ok = await until(() => hostCurl(`http://${lab.echo.address}/ip`, 1).stdout, (x) => x === lab.wireguard.exit_ip, 10_000, 100);
    expect(ok).toBe(lab.wireguard.exit_ip);
    console.log(`wireguard-go killed → traffic back after ${Date.now() - t0} ms`);
  });

  let ssBinding: string;
  it("rebinding to a shadowsocks egress: the exit address changes, with no packet from the underlay address in between", async () => {
    await unbind(h, wgBinding);
    // The unbind enqueued host.apply-egress → blocked; wait for it through the task list.
    await until(
      async () => (await h.request("GET", `/v1/admin/tasks?host_id=${hostId}&kind=host.apply-egress&status=succeeded`, { token: await h.adminToken() })).body.total,
      (n) => n >= 2,
      20_000,
    );
    expect(gatewayStatus(gatewayOf(hostId)).mode).toBe("blocked");
    expect(hostCurl(`http://${lab.echo.address}/ip`, 2).code).not.toBe(0);
    const b = await bind(h, hostId, ids.shadowsocks!);
    ssBinding = b.bindingId;
    await applyTask(b.taskId);
    expect(gatewayStatus(gatewayOf(hostId))).toMatchObject({ mode: "proxy", engine: "v2ray", status: "ready" });
    expect(hostCurl(`http://${lab.echo.address}/ip`).stdout).toBe(lab.proxies.shadowsocks.exit_ip);
    const udp = execIn(hostOf(hostId), ["sh", "-c", `echo x | nc -u -w 2 ${lab.echo.address} ${lab.echo.udp_port}`], { user: "workspace" });
    expect(udp.stdout).toBe(lab.proxies.shadowsocks.exit_ip);
    const dns = await hostLookup();
    expect(dns.sources).toEqual([lab.proxies.shadowsocks.exit_ip]);
  });

  it("proxy server stopped → no connectivity, SSH still works; pkill v2ray recovers", async () => {
    docker(["stop", "-t", "1", "ccp-lab-ss"]);
    try {
      expect(hostCurl(`http://${lab.echo.address}/ip`, 3).stdout).not.toBe(lab.proxies.shadowsocks.exit_ip);
      expect((await hostLookup().catch(() => ({ sources: [] as string[] }))).sources).toEqual([]);
      expect(await sshBanner(mgmtIp)).toMatch(/^SSH-2\.0-/);
    } finally {
      docker(["start", "ccp-lab-ss"]);
    }
    await until(() => hostCurl(`http://${lab.echo.address}/ip`, 2).stdout, (s) => s === lab.proxies.shadowsocks.exit_ip, 15_000, 250);
    const before = gatewayStatus(gatewayOf(hostId)).engine_restarts;
    const t0 = Date.now();
    execIn(gatewayOf(hostId), ["pkill", "v2ray"]);
    const ok = await until(() => hostCurl(`http://${lab.echo.address}/ip`, 1).stdout, (x) => x === lab.proxies.shadowsocks.exit_ip, 10_000, 100);
    expect(ok).toBe(lab.proxies.shadowsocks.exit_ip);
    expect(gatewayStatus(gatewayOf(hostId)).engine_restarts).toBe(before + 1);
    console.log(`v2ray killed → traffic back after ${Date.now() - t0} ms`);
  });

  it("a flushed ruleset is restored within 5 s", async () => {
    const t0 = Date.now();
    execIn(gatewayOf(hostId), ["nft", "flush", "ruleset"]);
    const s = await until(() => gatewayStatus(gatewayOf(hostId)), (x) => x.ruleset_restores >= 1 && x.status === "ready", 7000, 100);
    expect(s.ruleset_restores).toBe(1);
    expect(Date.now() - t0).toBeLessThan(6500);
    expect(execIn(gatewayOf(hostId), ["nft", "list", "chain", "inet", "ccp", "postrouting"]).stdout).toContain("policy drop");
    // The reconciler reports it once (docs/egress.md#gateway).
    await runReconcile(w.deps);
    await runReconcile(w.deps);
    const ev = await h.request("GET", `/v1/admin/events?host_id=${hostId}&type=egress.ruleset.restored`, { token: await h.adminToken() });
    expect(ev.body.events).toHaveLength(1);
    expect(ev.body.events[0]).toMatchObject({ level: "error", metadata: { ruleset_restores: 1, mode: "proxy" } });
    await until(() => hostCurl(`http://${lab.echo.address}/ip`, 2).stdout, (x) => x === lab.proxies.shadowsocks.exit_ip, 10_000, 250);
  });

  it("a TCP-only egress (http): TCP proxied, UDP blocked, DNS through the TCP stub", async () => {
    await unbind(h, ssBinding);
    await until(
      async () => (await h.request("GET", `/v1/admin/tasks?host_id=${hostId}&kind=host.apply-egress&status=succeeded`, { token: await h.adminToken() })).body.total,
      (n) => n >= 4,
      20_000,
    );
    const b = await bind(h, hostId, ids.http!);
    await applyTask(b.taskId);
    expect(execIn(hostOf(hostId), ["cat", "/etc/resolv.conf"]).stdout).toBe(`nameserver ${lab.env.EGRESS_DEFAULT_DNS_SERVER}\noptions use-vc`);
    expect(hostCurl(`http://${lab.echo.address}/ip`).stdout).toBe(lab.proxies.http.exit_ip);
    const udp = execIn(hostOf(hostId), ["sh", "-c", `echo x | nc -u -w 2 ${lab.echo.address} ${lab.echo.udp_port}`], { user: "workspace" });
    expect(udp.stdout).toBe("");
    const dns = await hostLookup();
    expect(dns.sources).toEqual([lab.proxies.http.exit_ip]);
    const name = `d${randomLabel()}.${lab.dns.domain}`;
    const dig = execIn(hostOf(hostId), ["dig", "+short", "+tries=1", "+time=3", name]);
    expect(dig.stdout).toBe(lab.echo.address);
    expect(await canary(lab, name)).toEqual([lab.proxies.http.exit_ip]);
  });

  it("leak sentinel: nothing in the echo, canary or resolver logs from the gateway's underlay address", () => {
    const s = sentinel(started, gwIp);
    expect(s.lines).toBe("");
    expect(s.leak).toBe(false);
  });
});
