import type { FileSpec } from "../runtime/runtime.js";
import type { MachineGuard } from "./machine.js";
import {
  type MgmtSide,
  renderBlockedRuleset,
  renderDirectRuleset,
  renderProxyRuleset,
  renderWireguardRuleset,
  WG_FWMARK,
} from "./rulesets.js";
import { isTcpOnly, renderV2rayConfig, type SingBoxOutbound } from "./v2ray.js";
import { cidr4, intIn, ipv4, networkOf, NetworkValueError, parseCidr4, port, wgKey } from "./values.js";

/**
 * Everything a gateway needs for one mode, with every name already resolved (docs/egress.md#gateway):
 * what the worker renders into `/etc/ccp/active/` (first start) or `/etc/ccp/next/` (live apply).
 */
export type GatewayConfig =
  | { mode: "blocked"; mgmt: MgmtSide | null }
  | { mode: "direct"; mgmt: MgmtSide | null; underlayGateway: string; dns: string; guard?: MachineGuard }
  | {
      mode: "wireguard";
      mgmt: MgmtSide | null;
      underlayGateway: string;
      /** The machine guard (rulesets.ts); absent only where no host runs (unit tests, benches). */
      guard?: MachineGuard;
      privateKey: string;
      peerPublicKey: string;
      presharedKey: string | null;
      /** The endpoint's IPv4 (resolved when the egress names a host). */
      endpoint: string;
      endpointPort: number;
      allowedIps: string;
      /** Our tunnel address (`wg_peer_address`). */
      address: string;
      dns: string;
      mtu: number;
      /** WIREGUARD_IMPLEMENTATION; absent or "auto": the gateway picks (docs/egress.md#wireguard-implementation). */
      implementation?: "auto" | "kernel" | "userspace";
    }
  | {
      mode: "proxy";
      mgmt: MgmtSide | null;
      underlayGateway: string;
      guard?: MachineGuard;
      /** sing-box outbound with its secrets. */
      outbound: SingBoxOutbound;
      /** The proxy server's IPv4 (resolved when `server` is a name). */
      server: string;
      dns: string;
    };

export type GatewayMode = GatewayConfig["mode"];

/** The files of `/etc/ccp/{active,next}/`, by name. */
export interface GatewayFiles {
  mode: string;
  "ruleset.nft": string;
  "routing.env": string;
  "wg0.conf": string;
  "v2ray.json": string;
  "unbound.conf": string;
  "resolv.conf": string;
  generation: string;
}

export const GATEWAY_FILE_NAMES = ["mode", "ruleset.nft", "routing.env", "wg0.conf", "v2ray.json", "unbound.conf", "resolv.conf", "generation"] as const;

/**
 * `wg_allowed_ips` (comma-separated CIDRs) as the `AllowedIPs` value. The data plane is IPv4 only
 * (IPv6 is disabled in the namespace), so IPv6 entries are left out; at least one IPv4 CIDR must
 * remain, else nothing could ever be routed into the tunnel.
 */
export function allowedIpsValue(v: string): string {
  const out: string[] = [];
  for (const raw of v.split(",").map((s) => s.trim()).filter(Boolean)) {
    if (raw.includes(":")) continue;
    out.push(networkOf(cidr4(raw, "wg_allowed_ips entry", { bareIsHost: true }), "wg_allowed_ips entry"));
  }
  if (out.length === 0) throw new NetworkValueError("wg_allowed_ips has no IPv4 CIDR");
  if (out.length > 64) throw new NetworkValueError("wg_allowed_ips has more than 64 entries");
  return out.join(", ");
}

/** `wg setconf` file (docs/egress.md#kill-switch). FwMark is in this first setconf, or the first handshake leaves unmarked. */
export function renderWgConf(c: Extract<GatewayConfig, { mode: "wireguard" }>): string {
  const ls = [
    "[Interface]",
    `PrivateKey = ${wgKey(c.privateKey, "wg_private_key")}`,
    `FwMark = ${WG_FWMARK}`,
    "",
    "[Peer]",
    `PublicKey = ${wgKey(c.peerPublicKey, "wg_public_key")}`,
    ...(c.presharedKey ? [`PresharedKey = ${wgKey(c.presharedKey, "wg_preshared_key")}`] : []),
    `Endpoint = ${ipv4(c.endpoint, "WireGuard endpoint")}:${port(c.endpointPort, "WireGuard endpoint port")}`,
    `AllowedIPs = ${allowedIpsValue(c.allowedIps)}`,
    "PersistentKeepalive = 25",
  ];
  return `${ls.join("\n")}\n`;
}

/**
 * DNS stub of TCP-only proxy egresses (docs/egress.md#mode-proxy): unbound on 127.0.0.1:5353, forwarding `.` to the
 * tunnel DNS server over TCP only (the TCP connection is then proxied like any other), no DNSSEC
 * validation, no caching of negative answers.
 */
export function renderUnboundConf(dns: string): string {
  return [
    "server:",
    "  interface: 127.0.0.1@5353",
    "  port: 5353",
    "  do-ip4: yes",
    "  do-ip6: no",
    "  do-udp: yes",
    "  do-tcp: yes",
    "  tcp-upstream: yes",
    "  do-daemonize: no",
    "  use-syslog: no",
    '  logfile: ""',
    "  verbosity: 0",
    '  username: ""',
    '  chroot: ""',
    '  pidfile: ""',
    '  directory: "/run/ccp"',
    // Redirected host queries keep their source address (the gateway's own): anything may ask.
    // Only loopback reaches this socket (bound to 127.0.0.1, in this namespace only).
    "  access-control: 0.0.0.0/0 allow",
    '  module-config: "iterator"',
    "  qname-minimisation: no",
    "  prefetch: no",
    "  cache-max-ttl: 0",
    "  cache-max-negative-ttl: 0",
    // A forwarder answers nothing itself: unbound's built-in local zones (RFC 6761 `test.`,
    // home.arpa, reverse zones of private ranges) would otherwise be answered NXDOMAIN here.
    "  unblock-lan-zones: yes",
    "  insecure-lan-zones: yes",
    '  local-zone: "test." nodefault',
    '  local-zone: "home.arpa." nodefault',
    "  num-threads: 1",
    "  outgoing-range: 64",
    "  num-queries-per-thread: 32",
    "forward-zone:",
    '  name: "."',
    `  forward-addr: ${ipv4(dns, "tunnel DNS server")}`,
    "  forward-tcp-upstream: yes",
    "",
  ].join("\n");
}

/** The resolver file the supervisor writes into /etc/resolv.conf in place (docs/egress.md#data-plane). */
export function renderResolvConf(c: GatewayConfig): string {
  if (c.mode === "blocked") return "nameserver 127.0.0.1\n";
  const tcpOnly = c.mode === "proxy" && isTcpOnly(c.outbound);
  return `nameserver ${ipv4(c.dns, "DNS server")}\n${tcpOnly ? "options use-vc\n" : ""}`;
}

/** `routing.env`: KEY=VALUE lines the supervisor parses (never sources). Empty values = absent. */
export function renderRoutingEnv(c: GatewayConfig): string {
  const mgmtNet = c.mgmt ? networkOf(c.mgmt.net, "management network") : "";
  const env: [string, string][] = [
    ["MGMT_NET", mgmtNet],
    ["UNDERLAY_GW", c.mode === "blocked" ? "" : ipv4(c.underlayGateway, "underlay gateway")],
  ];
  if (c.mode === "wireguard") {
    const a = parseCidr4(c.address, "wg_peer_address", { minPrefix: 8 });
    env.push(["WG_ADDRESS", `${a.address}/${a.prefix}`], ["WG_MTU", String(intIn(c.mtu, "WireGuard MTU", 576, 9000))]);
    // Only when forced, so "auto" configurations (and gateway images older than WG_IMPL) are unchanged.
    if (c.implementation && c.implementation !== "auto") env.push(["WG_IMPL", c.implementation]);
  }
  if (c.mode === "proxy") env.push(["TCP_ONLY", isTcpOnly(c.outbound) ? "1" : "0"]);
  return env.map(([k, v]) => `${k}=${v}\n`).join("");
}

export function renderRuleset(c: GatewayConfig): string {
  switch (c.mode) {
    case "blocked":
      return renderBlockedRuleset({ mgmt: c.mgmt });
    case "direct":
      return renderDirectRuleset({ dns: c.dns, underlayGateway: c.underlayGateway, mgmt: c.mgmt, guard: c.guard });
    case "wireguard":
      return renderWireguardRuleset({ dns: c.dns, endpoint: c.endpoint, endpointPort: c.endpointPort, mgmt: c.mgmt, guard: c.guard });
    case "proxy":
      return renderProxyRuleset({ dns: c.dns, proxy: c.server, tcpOnly: isTcpOnly(c.outbound), mgmt: c.mgmt, guard: c.guard });
  }
}

/**
 * All eight files. Files the mode does not use are rendered empty rather than left out: an upload
 * cannot delete, and this overwrites a previous mode's secrets (a WireGuard key, a proxy password)
 * still lying in the directory.
 */
export function renderGatewayFiles(c: GatewayConfig, generation: number): GatewayFiles {
  intIn(generation, "generation", 0, Number.MAX_SAFE_INTEGER);
  return {
    mode: `${c.mode}\n`,
    "ruleset.nft": renderRuleset(c),
    "routing.env": renderRoutingEnv(c),
    "wg0.conf": c.mode === "wireguard" ? renderWgConf(c) : "",
    "v2ray.json": c.mode === "proxy" ? renderV2rayConfig(c.outbound, ipv4(c.server, "proxy server")) : "",
    "unbound.conf": c.mode === "proxy" && isTcpOnly(c.outbound) ? renderUnboundConf(c.dns) : "",
    "resolv.conf": renderResolvConf(c),
    generation: `${generation}\n`,
  };
}

/** The files as an upload (mode 0600, root), relative to `/etc/ccp/<dir>/`. */
export function gatewayFileSpecs(files: GatewayFiles, dir: "active" | "next" | `next.${number}`): FileSpec[] {
  return GATEWAY_FILE_NAMES.map((n) => ({ name: `etc/ccp/${dir}/${n}`, mode: 0o600, content: files[n], uid: 0, gid: 0 }));
}
