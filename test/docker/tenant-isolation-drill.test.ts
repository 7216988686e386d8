import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { createServer, type Server } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiHarness, createApiHarness, type ListeningApi } from "../../shared/test/api-harness.js";
import { docker, removeInstanceObjects, startTestWorker, waitForTask, type WorkerHarness } from "../../shared/test/worker-harness.js";
import { bind, createEgress, gatewayOf, gatewayStatus, hostOf, type Lab, labUp, labWorkerEnv, unbind, underlayIp, until } from "./egress-lab.js";

/**
 * Tenant isolation drill (issue 10 §4, docs/egress.md#topology): in every egress mode — direct, blocked,
 * WireGuard (the lab's peer) and proxy (the lab's shadowsocks) — nothing on the machine that runs
 * the engine is reachable from inside a host, as the tenant (`workspace`) or as root in the host:
 *  - every IPv4 address of the machine (`ip -j -4 addr`: the default bridge gateway, the lab
 *    bridges, the management bridge, the machine's own interface address, the bridges this test
 *    creates), each on a TCP and a UDP canary this test owns (listening on 0.0.0.0), on Postgres
 *    5432, Redis 6379, the API port of this run, and by ICMP echo;
 *  - a service on another Docker network and one on a compose-style network (both 198.18.x.0/24),
 *    directly and through a port the compose service publishes on the default bridge gateway;
 *  - the other tenants' hosts (management address and gateway underlay address, SSH :22).
 * A reach is detected positively: the probe must read the answer of the thing it aimed at (the
 * canary's random banner, `+PONG`, Postgres' SSL reply, `HTTP/`, `SSH-`), and the canaries record
 * every connection and datagram they receive. A TCP connect alone proves nothing (in proxy mode
 * the local TPROXY engine accepts every connection), refused and timeout both count as not reached.
 */

const BANNER = `CCP-DRILL-${randomBytes(12).toString("hex")}`;
const PROBE_TIMEOUT_S = 1.5;

let lab: Lab;
let h: ApiHarness;
let w: WorkerHarness;
let api: ListeningApi;
let tcpCanary: Server;
let udpCanary: UdpSocket;
const tcpSeen: string[] = [];
const udpSeen: string[] = [];
const run = randomBytes(3).toString("hex");
const createdContainers: string[] = [];
const createdNetworks: string[] = [];

type Mode = "direct" | "blocked" | "wireguard" | "proxy";
const MODES: Mode[] = ["direct", "blocked", "wireguard", "proxy"];
const hosts = {} as Record<Mode, string>;

interface Target {
  id: string;
  proto: "tcp" | "udp" | "icmp";
  ip: string;
  port?: number;
  /** Bytes to send, hex. */
  send?: string;
  /** Any of these prefixes in the answer means the target was reached. */
  expect?: string[];
}

/** Runs in the host (python3 of the host image): every probe in its own thread, bounded by PROBE_TIMEOUT_S. */
const PROBE_PY = `
import json, socket, sys, threading
T = float(sys.argv[1]); targets = json.loads(sys.argv[2]); out = {}
def tcp(t):
    s = socket.socket(); s.settimeout(T)
    try:
        s.connect((t["ip"], t["port"]))
    except Exception as e:
        return False, "connect: " + type(e).__name__
    try:
        if t.get("send"): s.sendall(bytes.fromhex(t["send"]))
        data = s.recv(256)
    except Exception as e:
        return False, "read: " + type(e).__name__
    finally:
        s.close()
    ok = any(data.startswith(p.encode()) for p in t["expect"])
    return ok, "answer %r" % data[:40]
def udp(t):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(T)
    try:
        s.sendto(bytes.fromhex(t["send"]), (t["ip"], t["port"]))
        data, src = s.recvfrom(256)
    except Exception as e:
        return False, type(e).__name__
    finally:
        s.close()
    return any(data.startswith(p.encode()) for p in t["expect"]), "answer %r" % data[:40]
def icmp(t):
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    except Exception as e:
        return False, "no icmp socket: " + type(e).__name__
    s.settimeout(T)
    try:
        s.sendto(b"\\x08\\x00\\x00\\x00\\x00\\x00\\x00\\x01ccp", (t["ip"], 0))
        data, src = s.recvfrom(256)
    except Exception as e:
        return False, type(e).__name__
    finally:
        s.close()
    return data[:1] == b"\\x00", "reply from %s" % src[0]
def one(t):
    try:
        out[t["id"]] = {"tcp": tcp, "udp": udp, "icmp": icmp}[t["proto"]](t)
    except Exception as e:
        out[t["id"]] = (False, "error: " + type(e).__name__)
th = [threading.Thread(target=one, args=(t,)) for t in targets]
[x.start() for x in th]; [x.join() for x in th]
print(json.dumps({k: {"reached": v[0], "detail": v[1]} for k, v in out.items()}))
`;

function runAsync(argv: string[], timeoutMs = 60_000) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile("docker", argv, { encoding: "utf8", timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout: String(stdout ?? "").trim(), stderr: String(stderr ?? "").trim() });
    });
  });
}

async function probe(container: string, user: string, targets: Target[]): Promise<Record<string, { reached: boolean; detail: string }>> {
  const r = await runAsync(["exec", "-u", user, container, "python3", "-c", PROBE_PY, String(PROBE_TIMEOUT_S), JSON.stringify(targets)]);
  if (r.code !== 0) throw new Error(`probe in ${container} as ${user} failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, { reached: boolean; detail: string }>;
}

/** Every IPv4 address of this machine (the machine that runs the engine), loopback aside. */
function machineAddresses(): { ifname: string; ip: string }[] {
  const links = JSON.parse(execFileSync("ip", ["-j", "-4", "addr", "show"], { encoding: "utf8" })) as {
    ifname: string;
    addr_info: { family: string; local: string }[];
  }[];
  return links
    .flatMap((l) => l.addr_info.filter((a) => a.family === "inet").map((a) => ({ ifname: l.ifname, ip: a.local })))
    .filter((a) => !a.ip.startsWith("127."));
}

function listen<T>(fn: (cb: () => void) => T): Promise<T> {
  return new Promise((resolve) => {
    const v: T = fn(() => resolve(v));
  });
}

/** A free /24 in 198.18.0.0/15 (never 192.0.2.0/24), not used by any Docker network. */
function freeSubnet(used: Set<string>): string {
  for (;;) {
    const third = 1 + Math.floor(Math.random() * 250);
    // 198.19.10–127 and .250 belong to the lab's extra engines (test/lab/README.md "Extra Docker engines").
    if ((third >= 10 && third <= 127) || third === 250) continue;
    const s = `198.19.${third}.0/24`;
    if (!used.has(s)) {
      used.add(s);
      return s;
    }
  }
}

function dockerSubnets(): Set<string> {
  const ids = docker(["network", "ls", "-q"]).split("\n").filter(Boolean);
  const out = docker(["network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", ...ids]);
  return new Set(out.split(/\s+/).filter(Boolean));
}

/** A Docker network of the kind another project on the machine would have, and a service on it answering a banner. */
function serviceOn(kind: "other" | "compose", used: Set<string>, publish?: { ip: string; port: number }) {
  const net = `ccp-drill-${run}-${kind}`;
  const labels = ["--label", `cloud-cli-proxy.instance=${h.prefix}`];
  const compose = kind === "compose" ? ["--label", `com.docker.compose.project=drill${run}`, "--label", "com.docker.compose.network=default"] : [];
  // Another run may take the same /24 between our look and the create: a few fresh picks.
  for (let attempt = 1; ; attempt++) {
    try {
      docker(["network", "create", "--subnet", freeSubnet(used), ...labels, ...compose, net]);
      break;
    } catch (err) {
      if (attempt >= 5) throw err;
    }
  }
  createdNetworks.push(net);
  const name = `ccp-drill-${run}-${kind}-svc`;
  const server = `import socket\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(("0.0.0.0",8080));s.listen(64)\nwhile True:\n c,_=s.accept();c.sendall(b"${BANNER}-${kind}\\n");c.close()\n`;
  docker([
    "run", "-d", "--name", name, ...labels, "--network", net,
    ...(publish ? ["-p", `${publish.ip}:${publish.port}:8080`] : []),
    "--entrypoint", "python3", "cloud-cli-proxy/host:latest", "-c", server,
  ]);
  createdContainers.push(name);
  const ip = docker(["inspect", "-f", `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, name]);
  return { net, name, ip };
}

async function freePort(): Promise<number> {
  const s = createServer();
  await listen((cb) => s.listen(0, "127.0.0.1", cb));
  const p = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return p;
}

async function applyTasks(hostId: string) {
  const res = await h.request("GET", `/v1/admin/tasks?host_id=${hostId}&kind=host.apply-egress&limit=100`, { token: await h.adminToken() });
  return res.body.tasks as { id: string; status: string }[];
}

async function bindAndApply(hostId: string, egressId: string): Promise<string> {
  const { bindingId, taskId } = await bind(h, hostId, egressId);
  const t = await waitForTask(h, taskId!);
  if (t.status !== "succeeded") {
    const logs = execFileSync("docker", ["logs", "--tail", "30", gatewayOf(hostId)], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    throw new Error(`apply failed: ${JSON.stringify(t)}\n${logs}`);
  }
  return bindingId;
}

/** Blocked: bound, then unbound while running (docs/egress.md#modes: blocked until the next start). */
async function blockHost(hostId: string, egressId: string) {
  const bindingId = await bindAndApply(hostId, egressId);
  const seen = new Set((await applyTasks(hostId)).map((t) => t.id));
  await unbind(h, bindingId);
  const t = await until(
    async () => (await applyTasks(hostId)).find((x) => !seen.has(x.id) && ["succeeded", "failed", "canceled"].includes(x.status)),
    (x) => x !== undefined,
    60_000,
  );
  if (t?.status !== "succeeded") throw new Error(`unbind apply failed: ${JSON.stringify(t)}`);
}

let targets: (self: Mode) => Target[];

beforeAll(async () => {
  lab = labUp();
  h = await createApiHarness();
  api = await h.listen();
  // Every host starts direct (unbound, operator opt-in); three are then bound live.
  w = await startTestWorker(h, { ...labWorkerEnv(lab), EGRESS_UNBOUND_POLICY: "direct" });

  // Canaries this test owns, on every address of the machine.
  tcpCanary = createServer((c) => {
    tcpSeen.push(`${c.remoteAddress}:${c.localAddress}`);
    c.end(`${BANNER}\n`);
  });
  await listen((cb) => tcpCanary.listen(0, "0.0.0.0", cb));
  udpCanary = createSocket("udp4");
  udpCanary.on("message", (m, rinfo) => {
    udpSeen.push(`${rinfo.address}:${String(m).slice(0, 20)}`);
    udpCanary.send(`${BANNER}\n`, rinfo.port, rinfo.address);
  });
  await listen((cb) => udpCanary.bind(0, "0.0.0.0", cb));
  const tcpPort = (tcpCanary.address() as { port: number }).port;
  const udpPort = udpCanary.address().port;

  // Other Docker networks (before the hosts start, as they would be on a machine in use).
  const used = dockerSubnets();
  // The default bridge's gateway is the machine's address on docker0 (`docker network inspect bridge`
  // names the interface; its IPAM section lists no gateway).
  const bridgeIf = docker(["network", "inspect", "-f", '{{index .Options "com.docker.network.bridge.name"}}', "bridge"]);
  const bridgeGw = machineAddresses().find((a) => a.ifname === bridgeIf)?.ip;
  if (!bridgeGw) throw new Error(`no address on the default bridge ${bridgeIf}`);
  const publishPort = await freePort();
  const other = serviceOn("other", used);
  const compose = serviceOn("compose", used, { ip: bridgeGw, port: publishPort });

  const ids = await Promise.all(
    MODES.map(async () => {
      const u = await h.createUser();
      const res = await h.request("POST", "/v1/admin/hosts", { token: await h.adminToken(), body: { user_id: u.id } });
      if (res.status !== 202) throw new Error(`create host failed: ${res.status} ${res.text}`);
      const task = await waitForTask(h, res.body.task_id);
      if (task.status !== "succeeded") throw new Error(`host create failed: ${JSON.stringify(task)}`);
      return res.body.host.id as string;
    }),
  );
  MODES.forEach((m, i) => (hosts[m] = ids[i]!));
  const wg = await createEgress(h, { ...lab.wireguard.egress, label: `drill-wg-${run}` });
  const ss = await createEgress(h, { ...lab.proxies.shadowsocks.egress, label: `drill-ss-${run}` });
  const http = await createEgress(h, { ...lab.proxies.http.egress, label: `drill-http-${run}` });
  await Promise.all([bindAndApply(hosts.wireguard, wg), bindAndApply(hosts.proxy, ss), blockHost(hosts.blocked, http)]);

  const machine = machineAddresses();
  const pgSsl = "0000000804d2162f";
  const redisPing = Buffer.from("PING\r\n").toString("hex");
  const httpGet = Buffer.from("GET /healthz HTTP/1.0\r\n\r\n").toString("hex");
  const addrTargets: Target[] = machine.flatMap(({ ifname, ip }) => [
    { id: `tcp canary ${ip}:${tcpPort} (${ifname})`, proto: "tcp", ip, port: tcpPort, expect: [BANNER] },
    { id: `udp canary ${ip}:${udpPort} (${ifname})`, proto: "udp", ip, port: udpPort, send: Buffer.from(`drill ${ip}`).toString("hex"), expect: [BANNER] },
    { id: `postgres ${ip}:5432 (${ifname})`, proto: "tcp", ip, port: 5432, send: pgSsl, expect: ["N", "S", "E"] },
    { id: `redis ${ip}:6379 (${ifname})`, proto: "tcp", ip, port: 6379, send: redisPing, expect: ["+PONG", "-"] },
    { id: `api ${ip}:${api.port} (${ifname})`, proto: "tcp", ip, port: api.port, send: httpGet, expect: ["HTTP/"] },
    { id: `published compose port ${ip}:${publishPort} (${ifname})`, proto: "tcp", ip, port: publishPort, expect: [BANNER] },
    { id: `icmp ${ip} (${ifname})`, proto: "icmp", ip },
  ]);
  const fixed: Target[] = [
    { id: `machine loopback 127.0.0.1:${tcpPort} (the host's own netns by construction)`, proto: "tcp", ip: "127.0.0.1", port: tcpPort, expect: [BANNER] },
    { id: `service on another Docker network ${other.ip}:8080`, proto: "tcp", ip: other.ip, port: 8080, expect: [BANNER] },
    { id: `service on a compose network ${compose.ip}:8080`, proto: "tcp", ip: compose.ip, port: 8080, expect: [BANNER] },
  ];
  const tenants = MODES.map((m) => ({
    m,
    mgmt: underlayIp(gatewayOf(hosts[m]), lab.networks.mgmt.name),
    underlay: underlayIp(gatewayOf(hosts[m]), lab.networks.inet.name),
  }));
  targets = (self) => [
    ...addrTargets,
    ...fixed,
    ...tenants
      .filter((t) => t.m !== self)
      .flatMap((t): Target[] => [
        { id: `tenant ${t.m} management ${t.mgmt}:22`, proto: "tcp", ip: t.mgmt, port: 22, expect: ["SSH-"] },
        { id: `tenant ${t.m} gateway ${t.underlay}:22`, proto: "tcp", ip: t.underlay, port: 22, expect: ["SSH-"] },
      ]),
  ];
}, 600_000);

afterAll(async () => {
  await w?.stop();
  tcpCanary?.close();
  udpCanary?.close();
  for (const c of createdContainers) spawnQuiet(["rm", "-f", c]);
  for (const n of createdNetworks) spawnQuiet(["network", "rm", n]);
  if (h) removeInstanceObjects(h.prefix);
  await h?.close();
}, 120_000);

function spawnQuiet(argv: string[]) {
  try {
    execFileSync("docker", argv, { stdio: "ignore" });
  } catch {
    /* already gone */
  }
}

describe("tenant isolation drill: nothing on the machine is reachable from a host", () => {
  it("the hosts run in the four modes", () => {
    for (const m of MODES) expect(gatewayStatus(gatewayOf(hosts[m])), m).toMatchObject({ mode: m, status: "ready" });
  });

  it("from every mode, as the tenant and as root in the host: no address, port, network or tenant answers", async () => {
    const before = { tcp: tcpSeen.length, udp: udpSeen.length };
    const runs = MODES.flatMap((m) => ["workspace", "0"].map((user) => ({ m, user })));
    // Control: the same probe reaches the lab's echo server (the simulated internet) in every mode
    // that has an egress, so the guard did not just cut the host off.
    const echo: Target = { id: "control: lab echo", proto: "tcp", ip: lab.echo.address, port: 80, send: Buffer.from("GET /ip HTTP/1.0\r\n\r\n").toString("hex"), expect: ["HTTP/"] };
    const results = await Promise.all(
      runs.map(async ({ m, user }) => ({ m, user, r: await probe(hostOf(hosts[m]), user, [...targets(m), echo]) })),
    );
    for (const { m, user, r } of results) {
      expect(r[echo.id]?.reached, `${m} as ${user}: ${JSON.stringify(r[echo.id])}`).toBe(m !== "blocked");
      delete r[echo.id];
    }
    const reached: string[] = [];
    let probes = 0;
    for (const { m, user, r } of results) {
      probes += Object.keys(r).length;
      for (const [id, v] of Object.entries(r)) if (v.reached) reached.push(`${m} as ${user === "0" ? "root" : user}: ${id} — ${v.detail}`);
    }
    console.log(`[drill] ${probes} probes from ${runs.length} (mode, user) pairs; reached: ${reached.length}`);
    for (const line of reached) console.log(`[drill] REACHED ${line}`);
    const canaryHits = [...tcpSeen.slice(before.tcp).map((s) => `tcp from ${s}`), ...udpSeen.slice(before.udp).map((s) => `udp from ${s}`)];
    for (const line of canaryHits) console.log(`[drill] canary saw ${line}`);
    expect(reached, reached.join("\n")).toEqual([]);
    expect(canaryHits, canaryHits.join("\n")).toEqual([]);
  }, 180_000);

  it("the drill's probes do detect a reach (the same probe from the machine's side answers)", async () => {
    // Guards against a drill that passes because its probes cannot succeed: the canary and the
    // compose service answer a probe run where they are reachable (a container on the compose network).
    const svc = createdContainers.find((c) => c.endsWith("-compose-svc"))!;
    const net = createdNetworks.find((n) => n.endsWith("-compose"))!;
    // The machine's address on that bridge (IPAM lists no gateway for a network created with a subnet only).
    const bridge = `br-${docker(["network", "inspect", "-f", "{{.Id}}", net]).slice(0, 12)}`;
    const gw = machineAddresses().find((a) => a.ifname === bridge)!.ip;
    const tcpPort = (tcpCanary.address() as { port: number }).port;
    const r = await probe(svc, "0", [
      { id: "canary", proto: "tcp", ip: gw, port: tcpPort, expect: [BANNER] },
      { id: "udp", proto: "udp", ip: gw, port: udpCanary.address().port, send: "6869", expect: [BANNER] },
    ]);
    expect(r.canary?.reached, JSON.stringify(r)).toBe(true);
    expect(r.udp?.reached, JSON.stringify(r)).toBe(true);
  }, 60_000);
});
