/**
 * The bare baselines of bench/egress.ts (issue 12: "egress data plane ≥ 0.9× the same engine's bare
 * throughput"): the gateway's own engines, started by hand in a plain container from the gateway
 * image on the lab's underlay, without anything of the gateway's policy — no nftables ruleset (no
 * kill switch, no machine guard, no DNS pin, no TPROXY marking), no supervisor, no host container
 * joining the namespace. What stays is exactly what a tunnel needs at all:
 *   - WireGuard: wireguard-go as the supervisor starts it (ccp-engine, CAP_NET_ADMIN only, `-f wg0`),
 *     the very `wg0.conf` the worker renders for the egress (same key, FwMark 51820, endpoint, MTU)
 *     and the one policy rule any full-tunnel client needs so its own marked UDP does not loop into
 *     wg0 (wg-quick adds the same);
 *   - shadowsocks: v2ray with the very outbound the worker renders (v2ray.json's outbound, mark 255
 *     included), behind a local socks inbound instead of the TPROXY dokodemo-door, which needs the
 *     gateway's marking rules.
 * The container gets what the engine needs to run (NET_ADMIN, /dev/net/tun, the gateway's sysctls
 * so marks and rp_filter behave as in a gateway) and none of the gateway's resource limits: a bare
 * engine is the ceiling the gateway is measured against.
 *
 * Everything here is argv arrays; the configuration (which holds the lab's WireGuard key and the
 * proxy password) goes through stdin into a root-only file, never into argv or the environment.
 */
import { execFile } from "node:child_process";

export type Exec = (args: string[], opts?: { input?: string; timeoutMs?: number }) => Promise<{ code: number; stdout: string; stderr: string }>;

/** `docker …` with optional stdin; never throws (the caller decides what a non-zero exit means). */
export const dockerExec: Exec = (args, opts = {}) =>
  new Promise((resolve) => {
    const child = execFile("docker", args, { encoding: "utf8", timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({
        code: err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : -1) : 0,
        stdout: String(stdout).trim(),
        stderr: String(stderr).trim(),
      }),
    );
    child.stdin?.end(opts.input ?? "");
  });

async function must(exec: Exec, what: string, args: string[], input?: string): Promise<string> {
  const r = await exec(args, { input });
  if (r.code !== 0) throw new Error(`${what}: exit ${r.code}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** The engine user and its privileges, as ccp-gateway's as_engine hands them (deploy/images/gateway/ccp-gateway). */
const AS_ENGINE = (caps: string) =>
  `setpriv --reuid=ccp-engine --regid=ccp-engine --clear-groups --inh-caps=-all${caps} --ambient-caps=-all${caps} --bounding-set=-all${caps} --`;

export interface BareContainer {
  name: string;
  image: string;
  network: string;
  labels: Record<string, string>;
}

/** A plain gateway-image container that only sleeps: the engine is exec'd into it afterwards. */
async function startPlain(exec: Exec, c: BareContainer): Promise<void> {
  await must(exec, `create ${c.name}`, [
    "run", "-d", "--init", "--name", c.name, "--network", c.network,
    ...Object.entries(c.labels).flatMap(([k, v]) => ["--label", `${k}=${v}`]),
    "--cap-add", "NET_ADMIN", "--device", "/dev/net/tun",
    // The gateway's sysctls (worker/runtime/docker: createGateway): the marks decide the route of
    // the engine's own packets, and IPv6 is off as in the gateway's namespace.
    "--sysctl", "net.ipv4.conf.all.src_valid_mark=1",
    "--sysctl", "net.ipv6.conf.all.disable_ipv6=1",
    "--sysctl", "net.ipv6.conf.default.disable_ipv6=1",
    "--entrypoint", "sleep", c.image, "infinity",
  ]);
}

/** Writes stdin to a root-only file in the container. */
async function upload(exec: Exec, name: string, path: string, content: string): Promise<void> {
  await must(exec, `upload ${path}`, ["exec", "-i", name, "sh", "-c", `umask 077 && cat >${path}`], content);
}

/**
 * Starts wireguard-go in a fresh plain container with the egress's rendered `wg0.conf`, its tunnel
 * address and MTU: the tunnel is up (interface, peer, routes) when this returns; the first handshake
 * happens with the caller's first packet. One key holds one endpoint at a time: the caller makes sure
 * no gateway with the same key is active meanwhile, and removes the container before one is again.
 */
export async function startBareWireguard(
  exec: Exec,
  c: BareContainer,
  wg: { conf: string; address: string; mtu: number; fwmark: number; engine: "wireguard-go" | "kernel-wireguard" },
): Promise<void> {
  await startPlain(exec, c);
  await upload(exec, c.name, "/run/wg0.conf", wg.conf);
  if (wg.engine === "kernel-wireguard") {
    // The same engine as the gateway measured: the kernel's, when its gateway had it.
    await must(exec, "create the kernel's wg0", ["exec", c.name, "ip", "link", "add", "wg0", "type", "wireguard"]);
  } else {
    // The TUN node and the UAPI directory belong to the engine user, as ccp-gateway arranges it.
    await must(exec, "prepare wireguard-go", ["exec", c.name, "sh", "-c", "chgrp ccp-engine /dev/net/tun && chmod 0660 /dev/net/tun && install -d -m 0700 -o ccp-engine -g ccp-engine /var/run/wireguard"]);
    await must(exec, "start wireguard-go", ["exec", "-d", c.name, "sh", "-c", `exec ${AS_ENGINE(",+net_admin")} wireguard-go -f wg0 </dev/null`]);
  }
  const t = String(wg.fwmark);
  await must(exec, "configure wg0", [
    "exec", c.name, "sh", "-c",
    // wireguard-go: the UAPI socket appears once it has created wg0 (5 s at most, polled every 10 ms).
    `i=0; until ip link show dev wg0 >/dev/null 2>&1 && { [ "$4" = kernel-wireguard ] || [ -S /var/run/wireguard/wg0.sock ]; }; do i=$((i+1)); [ $i -lt 500 ] || { echo "no wg0" >&2; exit 1; }; sleep 0.01; done
     set -e
     wg setconf wg0 /run/wg0.conf
     ip addr add "$1" dev wg0
     ip link set wg0 mtu "$2" up
     ip rule add not fwmark "$3" lookup "$3" pref 200
     ip route add default dev wg0 table "$3"`,
    "sh", wg.address, String(wg.mtu), t, wg.engine,
  ]);
}

/** The socks inbound the bare v2ray listens on (inside its own container). */
export const BARE_SOCKS = "127.0.0.1:10808";

/**
 * The gateway's v2ray.json with its TPROXY inbound replaced by a plain socks inbound on
 * BARE_SOCKS: outbounds and routing are the rendered ones, untouched.
 */
export function bareV2rayConfig(gatewayV2rayJson: string): string {
  const doc = JSON.parse(gatewayV2rayJson) as Record<string, unknown>;
  const [address, port] = BARE_SOCKS.split(":");
  doc.inbounds = [{ tag: "socks", listen: address, port: Number(port), protocol: "socks", settings: { auth: "noauth", udp: false } }];
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/** Starts v2ray (as the engine user, CAP_NET_ADMIN for its outbound mark) in a fresh plain container; returns once the socks inbound listens. */
export async function startBareV2ray(exec: Exec, c: BareContainer, gatewayV2rayJson: string): Promise<void> {
  await startPlain(exec, c);
  await upload(exec, c.name, "/run/v2ray.json", bareV2rayConfig(gatewayV2rayJson));
  // Root opens the root-only file as stdin, then drops to the engine user: as ccp-gateway does.
  await must(exec, "start v2ray", ["exec", "-d", c.name, "sh", "-c", `exec ${AS_ENGINE(",+net_admin")} v2ray -config stdin: -format json </run/v2ray.json`]);
  const port = BARE_SOCKS.split(":")[1]!;
  await must(exec, "wait for v2ray", [
    "exec", c.name, "sh", "-c",
    `i=0; until ss -Hltn | grep -q '[[:space:]]127\\.0\\.0\\.1:${port}[[:space:]]'; do i=$((i+1)); [ $i -lt 500 ] || { echo "v2ray not listening" >&2; exit 1; }; sleep 0.01; done`,
  ]);
}
