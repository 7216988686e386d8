import { execFile } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, createApiHarness } from "../../shared/test/api-harness.js";
import { docker, removeInstanceObjects, startTestWorker, waitForTask, type WorkerHarness } from "../../shared/test/worker-harness.js";
import {
  bind,
  canary,
  createEgress,
  createRunningHost,
  gatewayOf,
  gatewayStatus,
  hostOf,
  type Lab,
  type LabEgress,
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
 * Every egress kind of the lab, one after the other, on ONE running host (docs/egress.md#data-plane
 * items 154–157, 173): WireGuard and each proxy kind (shadowsocks, vmess, trojan with a pinned
 * certificate, socks with UDP (v2ray), socks declared `network:"tcp"` (dante), http).
 *
 * For each kind, bound live (host.apply-egress) and checked from inside the host container as the
 * workspace user, with fixed argv:
 *  - TCP: `curl http://203.0.113.10/ip` → the declared address;
 *  - UDP: the echo on :9999 answers the declared address for UDP-capable kinds; for http and dante
 *    there is no reply, the echo logs no UDP datagram at all, and the proxy server logs no UDP
 *    client (the datagram never left the gateway);
 *  - DNS: `dig` over UDP, `dig +tcp` and `getent hosts` (glibc, through the resolver file) resolve,
 *    and the canary saw each name from the egress address only;
 *  - `dig @<forbidden resolver>` (UDP and TCP) gets no answer and that resolver logs nothing of it;
 *  - the leak sentinel finds no line from the gateway's underlay address;
 *  - the host was not restarted (container StartedAt, engine PID and PID 1's start time unchanged).
 * Then it is unbound: the gateway goes blocked, nothing gets out (TCP, UDP, DNS), SSH still
 * answers on the management address. The next kind is bound on the same host (a live rebind).
 *
 * The order mixes the transitions: proxy → proxy, proxy → WireGuard (item 173), WireGuard → proxy,
 * UDP-capable → TCP-only (DNS stub starts), TCP-only → TCP-only. At the end the observed UDP/DNS
 * support matrix per kind is printed (and compared with docs/egress.md#mode-proxy's table).
 */

type Kind = "shadowsocks" | "vmess" | "trojan" | "wireguard" | "socks_udp" | "socks" | "http";
const ORDER: Kind[] = ["shadowsocks", "vmess", "trojan", "wireguard", "socks_udp", "socks", "http"];
/** docs/egress.md#mode-proxy's table: what each kind must do with UDP. */
const UDP_CAPABLE: Record<Kind, boolean> = {
  wireguard: true,
  shadowsocks: true,
  vmess: true,
  trojan: true,
  socks_udp: true,
  socks: false,
  http: false,
};

interface Row {
  kind: Kind;
  exit_ip: string;
  engine: string;
  api_udp: string;
  apply_ms: number;
  tcp: string;
  udp: string;
  dns_udp: string;
  dns_tcp: string;
  dns_system: string;
  dns_path: string;
  forbidden: string;
  sentinel: string;
  unbind: string;
}

let lab: Lab;
let h: ApiHarness;
let w: WorkerHarness;
let hostId: string;
let gwIp: string;
let mgmtIp: string;
const suiteStart = new Date();
const ids = {} as Record<Kind, string>;
const rows: Row[] = [];
let identity: HostIdentity;

interface HostIdentity {
  hostStartedAt: string;
  hostPid: string;
  pid1Start: string;
  gatewayStartedAt: string;
  gatewayPid: string;
}

const labEgress = (k: Kind): LabEgress => (k === "wireguard" ? lab.wireguard : lab.proxies[k]);

beforeAll(async () => {
  lab = labUp();
  h = await createApiHarness();
  w = await startTestWorker(h, labWorkerEnv(lab));
  for (const k of ORDER) ids[k] = await createEgress(h, { ...labEgress(k).egress, label: `kinds-${k}` });
  const { hostId: id, task } = await createRunningHost(h);
  expect(task.status, JSON.stringify(task)).toBe("succeeded");
  hostId = id;
  gwIp = underlayIp(gatewayOf(hostId), lab.networks.inet.name);
  mgmtIp = underlayIp(gatewayOf(hostId), lab.networks.mgmt.name);
  identity = hostIdentity();
});

afterAll(async () => {
  // This suite never stops a lab server; only its own objects are removed.
  await w?.stop();
  if (h) removeInstanceObjects(h.prefix);
  await h?.close();
});

/** docker exec (fixed argv), asynchronous so a kind's checks run side by side. Never rejects. */
function run(container: string, argv: string[], opts: { user?: string; timeoutMs?: number } = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      "docker",
      ["exec", ...(opts.user ? ["-u", opts.user] : []), container, ...argv],
      { encoding: "utf8", timeout: opts.timeoutMs ?? 20_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : -1) : 0;
        resolve({ code, stdout: String(stdout ?? "").trim(), stderr: String(stderr ?? "").trim() });
      },
    );
  });
}

const asUser = (argv: string[], timeoutMs?: number) => run(hostOf(hostId), argv, { user: "workspace", timeoutMs });

/** The container's StartedAt and engine PID, and PID 1's start time (field 22 of /proc/1/stat). */
function hostIdentity(): HostIdentity {
  const [hostStartedAt, hostPid] = docker(["inspect", "-f", "{{.State.StartedAt}} {{.State.Pid}}", hostOf(hostId)]).split(" ");
  const [gatewayStartedAt, gatewayPid] = docker(["inspect", "-f", "{{.State.StartedAt}} {{.State.Pid}}", gatewayOf(hostId)]).split(" ");
  const stat = docker(["exec", hostOf(hostId), "cat", "/proc/1/stat"]);
  const pid1Start = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]!; // fields after "(comm)" start at 3
  return { hostStartedAt: hostStartedAt!, hostPid: hostPid!, pid1Start, gatewayStartedAt: gatewayStartedAt!, gatewayPid: gatewayPid! };
}

const sinceLogs = (container: string, since: Date) =>
  execFileText("docker", ["logs", "--since", since.toISOString(), container]);

function execFileText(cmd: string, argv: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, argv, { encoding: "utf8", maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      err ? reject(err) : resolve(`${stdout}${stderr}`),
    ),
  );
}

const applyTaskIds = new Set<string>();

async function applyTasks() {
  const res = await h.request("GET", `/v1/admin/tasks?host_id=${hostId}&kind=host.apply-egress&limit=100`, { token: await h.adminToken() });
  return res.body.tasks as { id: string; status: string; steps: { name: string; status: string }[] }[];
}

async function expectApplied(taskId: string) {
  const t = await waitForTask(h, taskId);
  applyTaskIds.add(taskId);
  expect(t.status, JSON.stringify(t)).toBe("succeeded");
  expect(t.steps.map((s: { name: string; status: string }) => `${s.name}:${s.status}`)).toEqual([
    "write_config:succeeded",
    "reload_gateway:succeeded",
    "verify_egress:succeeded",
  ]);
}

/** Unbind gives no task id: wait for the new host.apply-egress task (not seen before) to succeed. */
async function unbindAndWait(bindingId: string) {
  for (const t of await applyTasks()) applyTaskIds.add(t.id);
  await unbind(h, bindingId);
  const fresh = await until(
    async () => (await applyTasks()).find((t) => !applyTaskIds.has(t.id) && ["succeeded", "failed", "canceled"].includes(t.status)),
    (t) => t !== undefined,
    30_000,
  );
  expect(fresh, "the unbind enqueues a host.apply-egress task").toBeDefined();
  applyTaskIds.add(fresh!.id);
  expect(fresh!.status, JSON.stringify(fresh)).toBe("succeeded");
}

const ECHO_URL = () => `http://${lab.echo.address}/ip`;
const udpEcho = () => asUser(["sh", "-c", `echo ccp | nc -u -w 2 ${lab.echo.address} ${lab.echo.udp_port}`], 10_000);
const digShort = (name: string, tcp: boolean) =>
  asUser(["dig", "+short", ...(tcp ? ["+tcp"] : []), "+tries=1", "+time=3", name], 10_000);

/** A lookup's answer and the canary's sources for the name (polled up to 2 s, as the worker does). */
async function lookup(kind: "udp" | "tcp" | "system"): Promise<{ name: string; answer: string; sources: string[]; code: number }> {
  const name = `${kind[0]}${randomLabel()}.${lab.dns.domain}`;
  const r = kind === "system" ? await asUser(["timeout", "5", "getent", "hosts", name], 10_000) : await digShort(name, kind === "tcp");
  const answer = r.stdout.split(/\s+/)[0] ?? "";
  const sources = await until(() => canary(lab, name), (s) => s.length > 0, 2000, 100);
  return { name, answer, sources, code: r.code };
}

const fmtDns = (d: { answer: string; sources: string[] }) => (d.answer ? `${d.answer} via [${d.sources.join(",")}]` : `no answer [${d.sources.join(",")}]`);

describe("every egress kind on one host, rebound live", () => {
  it("the host starts unbound: blocked, SSH answers on the management address", async () => {
    expect(gatewayStatus(gatewayOf(hostId))).toMatchObject({ mode: "blocked", status: "ready", engine: "none" });
    expect((await asUser(["curl", "-s", "-m", "2", ECHO_URL()])).code).not.toBe(0);
    expect(await sshBanner(mgmtIp)).toMatch(/^SSH-2\.0-/);
  });

  let previous: { kind: Kind; bindingId: string } | null = null;

  for (const kind of ORDER) {
    it(`${kind}: bound live, TCP/UDP/DNS leave as the declared address, no leak, host not restarted`, async () => {
      const e = labEgress(kind);
      const phaseStart = new Date(Date.now() - 1000); // docker logs --since has second precision
      const prevExit = previous ? labEgress(previous.kind).exit_ip : null;

      const t0 = Date.now();
      const b = await bind(h, hostId, ids[kind]);
      expect(b.taskId, "a running host gets a host.apply-egress task").toBeTruthy();
      await expectApplied(b.taskId!);
      const applyMs = Date.now() - t0;
      previous = { kind, bindingId: b.bindingId };

      const status = gatewayStatus(gatewayOf(hostId));
      expect(status).toMatchObject({ mode: kind === "wireguard" ? "wireguard" : "proxy", status: "ready" });
      const egress = (await h.request("GET", `/v1/admin/egress-ips/${ids[kind]}`, { token: await h.adminToken() })).body.egress_ip;
      expect(egress.health).toBe("passing");
      if (kind !== "wireguard") expect(egress.udp).toBe(UDP_CAPABLE[kind] ? "proxied" : "blocked");

      // All from inside the host, as the workspace user, side by side.
      const [tcp, udp, dnsUdp, dnsTcp, dnsSys, forbiddenUdp, forbiddenTcp, resolv, unbound] = await Promise.all([
        asUser(["curl", "-s", "-m", "5", ECHO_URL()]),
        udpEcho(),
        lookup("udp"),
        lookup("tcp"),
        lookup("system"),
        (async () => {
          const name = `x${randomLabel()}.${lab.dns.domain}`;
          return { name, ...(await asUser(["dig", `@${lab.resolver.address}`, "+tries=1", "+time=2", name], 10_000)) };
        })(),
        (async () => {
          const name = `y${randomLabel()}.${lab.dns.domain}`;
          return { name, ...(await asUser(["dig", "+tcp", `@${lab.resolver.address}`, "+tries=1", "+time=2", name], 10_000)) };
        })(),
        run(hostOf(hostId), ["cat", "/etc/resolv.conf"]),
        run(gatewayOf(hostId), ["pgrep", "-x", "unbound"]),
      ]);

      // TCP: the declared address, and a different one than the previous egress's (live rebind).
      expect(tcp.stdout, `${kind} TCP exit`).toBe(e.exit_ip);
      if (prevExit) expect(tcp.stdout).not.toBe(prevExit);

      // UDP.
      if (UDP_CAPABLE[kind]) {
        expect(udp.stdout, `${kind} UDP exit`).toBe(e.exit_ip);
      } else {
        expect(udp.stdout, `${kind} UDP must get no reply`).toBe("");
      }

      // DNS: three paths, each resolved, each seen by the canary from the egress address only.
      for (const [what, d] of [["dig (UDP)", dnsUdp], ["dig +tcp", dnsTcp], ["getent hosts", dnsSys]] as const) {
        expect(d.answer, `${kind} ${what} answer`).toBe(lab.echo.address); // the canary answers every name with the echo
        expect(d.sources, `${kind} ${what} canary sources`).toEqual([e.exit_ip]);
      }

      // The forbidden resolver: no answer over UDP or TCP.
      for (const f of [forbiddenUdp, forbiddenTcp]) {
        expect(f.code, `${kind} dig @forbidden ${f.name}`).not.toBe(0);
        expect(f.stdout).not.toMatch(/ANSWER SECTION/);
      }

      // DNS path: resolver file and the stub, as docs/egress.md#mode-proxy / docs/egress.md#data-plane say for the kind.
      const tcpOnly = !UDP_CAPABLE[kind];
      const dnsServer = kind === "wireguard" ? (e.egress.wg_dns_server as string) : lab.env.EGRESS_DEFAULT_DNS_SERVER!;
      expect(resolv.stdout).toBe(`nameserver ${dnsServer}${tcpOnly ? "\noptions use-vc" : ""}`);
      expect(unbound.code === 0, `${kind}: the unbound stub runs only for TCP-only kinds`).toBe(tcpOnly);

      // Packet-level evidence in the lab's logs (read after the canary polls; the echo logs synchronously).
      const [echoLog, resolverLog, serverLog] = await Promise.all([
        sinceLogs("ccp-lab-echo", phaseStart),
        sinceLogs("ccp-lab-resolver", phaseStart),
        sinceLogs(e.container, phaseStart),
      ]);
      expect(resolverLog, "the forbidden resolver saw nothing of the host's queries").not.toContain(forbiddenUdp.name);
      expect(resolverLog).not.toContain(forbiddenTcp.name);
      const udpLines = echoLog.split("\n").filter((l) => / udp /.test(l));
      if (tcpOnly) {
        expect(udpLines, `${kind}: no UDP datagram reached the echo from anywhere`).toEqual([]);
        expect(serverLog.split("\n").filter((l) => / client udp /.test(l)), `${kind}: no UDP to the proxy server`).toEqual([]);
      } else {
        expect(udpLines.length).toBeGreaterThan(0);
        for (const l of udpLines) expect(l, "every UDP datagram at the echo came from the egress").toContain(` udp ${e.exit_ip}:`);
      }
      const s = sentinel(phaseStart, gwIp);
      expect(s.lines, `${kind}: leak sentinel`).toBe("");
      expect(s.leak).toBe(false);

      // Not restarted: same containers, same PID 1.
      expect(hostIdentity()).toEqual(identity);

      rows.push({
        kind,
        exit_ip: e.exit_ip,
        engine: status.engine,
        api_udp: kind === "wireguard" ? "-" : (egress.udp as string),
        apply_ms: applyMs,
        tcp: tcp.stdout || `fail (${tcp.code})`,
        udp: udp.stdout ? `reply ${udp.stdout}` : "no reply, 0 datagrams at echo/server",
        dns_udp: fmtDns(dnsUdp),
        dns_tcp: fmtDns(dnsTcp),
        dns_system: fmtDns(dnsSys),
        dns_path:
          kind === "wireguard"
            ? "wg0 (UDP+TCP in the tunnel)"
            : tcpOnly
              ? "unbound stub :5353 → TCP via proxy (use-vc)"
              : "UDP via proxy",
        forbidden: "no answer (UDP, TCP), resolver log empty",
        sentinel: s.leak ? "LEAK" : "0 lines",
        unbind: "",
      });
    });

    it(`${kind}: unbound → blocked: no TCP, UDP or DNS; SSH still answers`, async () => {
      expect(previous?.kind).toBe(kind);
      const phaseStart = new Date(Date.now() - 1000);
      await unbindAndWait(previous!.bindingId);
      expect(gatewayStatus(gatewayOf(hostId))).toMatchObject({ mode: "blocked", status: "ready", engine: "none" });
      const [tcp, udp, dig, digCanary, banner, resolv] = await Promise.all([
        asUser(["curl", "-s", "-m", "2", ECHO_URL()]),
        udpEcho(),
        digShort(`n${randomLabel()}.${lab.dns.domain}`, false),
        // Past the loopback resolver file: straight at the tunnel DNS server, which is pinned but unrouted now.
        asUser(["dig", "+short", `@${lab.dns.address}`, "+tries=1", "+time=2", `m${randomLabel()}.${lab.dns.domain}`], 10_000),
        sshBanner(mgmtIp),
        run(hostOf(hostId), ["cat", "/etc/resolv.conf"]),
      ]);
      expect(tcp.code).not.toBe(0);
      expect(tcp.stdout).toBe("");
      expect(udp.stdout).toBe("");
      // dig +short prints its errors on stdout: no address line is what matters.
      for (const d of [dig, digCanary]) {
        expect(d.code).not.toBe(0);
        expect(d.stdout).not.toMatch(/^\d+\.\d+\.\d+\.\d+$/m);
      }
      expect(resolv.stdout).toBe("nameserver 127.0.0.1");
      expect(banner).toMatch(/^SSH-2\.0-/);
      expect(sentinel(phaseStart, gwIp).leak).toBe(false);
      expect(hostIdentity()).toEqual(identity);
      rows.at(-1)!.unbind = "blocked, SSH ok";
    });
  }

  it("support matrix (observed) matches docs/egress.md#mode-proxy; leak sentinel over the whole suite is empty", () => {
    expect(rows.map((r) => r.kind)).toEqual(ORDER);
    const cols: [keyof Row, string][] = [
      ["kind", "kind"],
      ["engine", "engine"],
      ["api_udp", "API udp"],
      ["tcp", "TCP exit"],
      ["udp", "UDP echo"],
      ["dns_udp", "dig (UDP)"],
      ["dns_tcp", "dig +tcp"],
      ["dns_system", "getent (resolver file)"],
      ["dns_path", "DNS path"],
      ["forbidden", "dig @203.0.113.54"],
      ["sentinel", "sentinel"],
      ["unbind", "after unbind"],
      ["apply_ms", "apply ms"],
    ];
    const table = [
      `| ${cols.map((c) => c[1]).join(" | ")} |`,
      `| ${cols.map(() => "---").join(" | ")} |`,
      ...rows.map((r) => `| ${cols.map(([k]) => String(r[k])).join(" | ")} |`),
    ].join("\n");
    console.log(`\nUDP/DNS support matrix per egress kind (observed from inside one host, rebound live):\n${table}\n`);
    // docs/egress.md#mode-proxy's table, as observed: UDP proxied exactly for the UDP-capable kinds, the TCP stub exactly
    // for the others, DNS from the egress address on every path, SSH kept after every unbind.
    for (const r of rows) {
      expect(r.udp.startsWith("reply "), r.kind).toBe(UDP_CAPABLE[r.kind]);
      expect(r.dns_path.startsWith("unbound stub"), r.kind).toBe(!UDP_CAPABLE[r.kind]);
      for (const d of [r.dns_udp, r.dns_tcp, r.dns_system]) expect(d, r.kind).toBe(`${lab.echo.address} via [${r.exit_ip}]`);
      expect(r.unbind, r.kind).toBe("blocked, SSH ok");
    }
    const s = sentinel(suiteStart, gwIp);
    expect(s.lines).toBe("");
  });
});
