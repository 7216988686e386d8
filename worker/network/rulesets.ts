import { type MachineGuard, PRIVATE_RANGES } from "./machine.js";
import { cidr4, ipv4, networkOf, port } from "./values.js";

/**
 * nftables rulesets of the gateway, one per mode (docs/egress.md#kill-switch, docs/egress.md#modes). Each starts with
 * `flush ruleset`, so `nft -f` installs it as one transaction (and removes Docker's embedded-DNS
 * rules in the namespace). Every interpolated value passes a validator of ./values.ts first.
 *
 * `mgmt` is the management side (docs/egress.md#topology invariant 7): the Docker host's address on the management
 * bridge (`src`) and that bridge's subnet (`net`). A test gateway (docs/egress.md#egress-test) has no management network:
 * `mgmt: null` leaves those rules out, so nothing is accepted from anywhere.
 */
export interface MgmtSide {
  /** The management bridge's gateway address (where api and sshd connect from). */
  src: string;
  /** The management subnet (CIDR). */
  net: string;
}

/** The engine's socket mark in WireGuard mode (`FwMark` of wg0.conf, table 51820). */
export const WG_FWMARK = 51820;
/** v2ray's outbound socket mark in proxy mode. */
export const PROXY_MARK = 255;

function mgmtChecked(m: MgmtSide | null): { src: string; net: string } | null {
  if (!m) return null;
  return { src: ipv4(m.src, "management source"), net: networkOf(cidr4(m.net, "management network"), "management network") };
}

/**
 * How the kill switch refuses a host's packet to a forbidden destination where a prompt answer
 * is worth having (docs/egress.md#kill-switch "Reject, not drop"): an ICMP "administratively
 * prohibited" generated in the namespace itself, so the sender fails at once instead of waiting
 * out its timeout. The packet is discarded exactly as by `drop`, nothing leaves the namespace,
 * and the sender learns only that the destination is blocked — which the policy already says.
 * This is what lets the isolation check and the forbidden-resolver check finish in milliseconds.
 */
export const REJECT = "reject with icmpx type admin-prohibited";

const mgmtOut = (m: { src: string } | null) =>
  m ? [`    ip daddr ${m.src} tcp sport { 22, 6901 } ct state established accept`] : [];
const mgmtIn = (m: { src: string } | null) => (m ? [`    ip saddr ${m.src} tcp dport { 22, 6901 } accept`] : []);
const lines = (...parts: (string | string[])[]) => `${parts.flat().join("\n")}\n`;

/**
 * The machine guard (issue 10 §4, ./machine.ts): host packets to the machine that runs the
 * engine — its own addresses, every bridge gateway, every Docker network but the underlay — are
 * dropped before any routing decision (priority -180: after conntrack at -200, which the
 * `ct state` of the control-plane replies needs, and before proxy mode's marking at mangle -150,
 * so they never reach wg0 or the TPROXY engine either). Passed first: the engine's
 * own marked packets (its server may live on the machine), loopback, replies to the control plane
 * and DNS to the configured server. In direct mode the private ranges go too, except the underlay
 * subnet: through Docker's NAT they are the machine's neighbourhood, never the internet. Left out
 * (`guard` undefined) only where no host runs: unit tests and benches.
 */
function guardChain(g: MachineGuard | undefined, o: { mark?: number; dns: string; mgmt: { src: string } | null; direct: boolean }): string[] {
  if (!g) return [];
  const machine = g.machine.map((c) => cidr4(c, "machine address", { bareIsHost: true }));
  if (machine.length === 0) return [];
  const underlay = networkOf(g.underlayNet, "underlay network");
  return [
    "  chain machine_guard {",
    "    type filter hook output priority -180; policy accept;",
    o.mark !== undefined ? [`    meta mark ${o.mark} accept`] : [],
    "    ip daddr 127.0.0.0/8 accept",
    o.mgmt ? [`    ip daddr ${o.mgmt.src} tcp sport { 22, 6901 } ct state established accept`] : [],
    `    ip daddr ${o.dns} meta l4proto { tcp, udp } th dport 53 accept`,
    `    ip daddr { ${machine.join(", ")} } drop`,
    o.direct ? [`    ip daddr != ${underlay} ip daddr { ${PRIVATE_RANGES.join(", ")} } drop`] : [],
    "  }",
  ].flat();
}

export function renderWireguardRuleset(o: {
  dns: string;
  endpoint: string;
  endpointPort: number;
  mgmt: MgmtSide | null;
  guard?: MachineGuard;
}): string {
  const dns = ipv4(o.dns, "tunnel DNS server");
  const ep = ipv4(o.endpoint, "WireGuard endpoint");
  const epPort = port(o.endpointPort, "WireGuard endpoint port");
  const m = mgmtChecked(o.mgmt);
  return lines(
    "flush ruleset",
    "table inet ccp {",
    "  chain dns_pin {",
    "    type filter hook output priority -300; policy accept;",
    `    meta mark ${WG_FWMARK} accept`,
    "    ip daddr 127.0.0.0/8 accept",
    `    meta l4proto { tcp, udp } th dport 53 ip daddr != ${dns} ${REJECT}`,
    `    tcp dport 853 ${REJECT}`,
    "    ip daddr 169.254.0.0/16 drop",
    "  }",
    guardChain(o.guard, { mark: WG_FWMARK, dns, mgmt: m, direct: false }),
    "  chain output {",
    "    type filter hook output priority 0; policy drop;",
    '    oif "lo" accept',
    `    meta mark ${WG_FWMARK} ip daddr ${ep} udp dport ${epPort} accept`,
    '    oifname "wg0" accept',
    mgmtOut(m),
    "  }",
    "  chain input {",
    "    type filter hook input priority 0; policy drop;",
    '    iif "lo" accept',
    '    iifname "wg0" ct state established,related accept',
    `    ip saddr ${ep} udp sport ${epPort} accept`,
    mgmtIn(m),
    "  }",
    "  chain forward { type filter hook forward priority 0; policy drop; }",
    "}",
  );
}

export function renderProxyRuleset(o: { dns: string; proxy: string; tcpOnly: boolean; mgmt: MgmtSide | null; guard?: MachineGuard }): string {
  const dns = ipv4(o.dns, "tunnel DNS server");
  const proxy = ipv4(o.proxy, "proxy server");
  const dnsMark = o.tcpOnly ? 2 : 1;
  const m = mgmtChecked(o.mgmt);
  return lines(
    "flush ruleset",
    "table inet ccp {",
    "  chain dns_pin {",
    "    type filter hook output priority -300; policy accept;",
    `    meta mark ${PROXY_MARK} accept`,
    "    ip daddr 127.0.0.0/8 accept",
    `    meta l4proto { tcp, udp } th dport 53 ip daddr != ${dns} ${REJECT}`,
    `    tcp dport 853 ${REJECT}`,
    "    ip daddr 169.254.0.0/16 drop",
    "  }",
    guardChain(o.guard, { mark: PROXY_MARK, dns, mgmt: m, direct: false }),
    "  chain mark_local {",
    "    type route hook output priority mangle; policy accept;",
    `    meta mark ${PROXY_MARK} return`,
    "    fib daddr type local return",
    m ? [`    ip daddr ${m.src} tcp sport { 22, 6901 } return`] : [],
    `    udp dport 53 meta mark set ${dnsMark} return`,
    "    meta l4proto { tcp, udp } meta mark set 1",
    "  }",
    "  chain tproxy_in {",
    "    type filter hook prerouting priority mangle; policy accept;",
    '    iif "lo" meta mark 1 meta l4proto { tcp, udp } tproxy ip to 127.0.0.1:12345 accept',
    "  }",
    // In the output hook `oif` is the device of the ORIGINAL route lookup: the re-route to lo
    // that mark 1/2 triggers is not visible here. The kill switch proper is postrouting.
    "  chain output {",
    "    type filter hook output priority 0; policy drop;",
    '    oif "lo" accept',
    "    meta mark { 1, 2 } accept",
    `    meta mark ${PROXY_MARK} ip daddr ${proxy} accept`,
    mgmtOut(m),
    "  }",
    "  chain postrouting {",
    "    type filter hook postrouting priority 0; policy drop;",
    '    oif "lo" accept',
    `    meta mark ${PROXY_MARK} ip daddr ${proxy} accept`,
    mgmtOut(m),
    "  }",
    "  chain input {",
    "    type filter hook input priority 0; policy drop;",
    '    iif "lo" accept',
    `    ip saddr ${proxy} ct state established,related accept`,
    mgmtIn(m),
    "  }",
    "  chain forward { type filter hook forward priority 0; policy drop; }",
    "  chain dns_stub {",
    "    type nat hook output priority -100; policy accept;",
    "    meta mark 2 udp dport 53 redirect to :5353",
    "  }",
    "}",
  );
}

export function renderBlockedRuleset(o: { mgmt: MgmtSide | null }): string {
  const m = mgmtChecked(o.mgmt);
  return lines(
    "flush ruleset",
    "table inet ccp {",
    "  chain output {",
    "    type filter hook output priority 0; policy drop;",
    '    oif "lo" accept',
    mgmtOut(m),
    // Everything else from the namespace: refused at once (REJECT), never sent.
    `    ${REJECT}`,
    "  }",
    "  chain input {",
    "    type filter hook input priority 0; policy drop;",
    '    iif "lo" accept',
    mgmtIn(m),
    "  }",
    "  chain forward { type filter hook forward priority 0; policy drop; }",
    "}",
  );
}

/**
 * Direct mode (docs/egress.md#modes, operator opt-in for unbound hosts): Docker's NAT via the underlay gateway,
 * DNS pinned to EGRESS_DEFAULT_DNS_SERVER. The management network and the Docker host's address
 * on the underlay (`underlayGateway`, i.e. the control plane) are dropped, as is metadata.
 *
 * Deviation from the letter of docs/egress.md#modes, which drops the whole underlay subnet: on the test lab the
 * simulated internet *is* the underlay (docs/egress.md#lab), so dropping the subnet would make direct mode
 * unreachable there ( expects connectivity). The worker-created underlay has
 * inter-container communication off, so other gateways on it are not reachable anyway.
 */
export function renderDirectRuleset(o: { dns: string; underlayGateway: string; mgmt: MgmtSide | null; guard?: MachineGuard }): string {
  const dns = ipv4(o.dns, "DNS server");
  const ugw = ipv4(o.underlayGateway, "underlay gateway");
  const m = mgmtChecked(o.mgmt);
  return lines(
    "flush ruleset",
    "table inet ccp {",
    "  chain dns_pin {",
    "    type filter hook output priority -300; policy accept;",
    "    ip daddr 127.0.0.0/8 accept",
    `    meta l4proto { tcp, udp } th dport 53 ip daddr != ${dns} ${REJECT}`,
    `    tcp dport 853 ${REJECT}`,
    "    ip daddr 169.254.0.0/16 drop",
    "  }",
    guardChain(o.guard, { dns, mgmt: m, direct: true }),
    "  chain output {",
    "    type filter hook output priority 0; policy drop;",
    '    oif "lo" accept',
    mgmtOut(m),
    m ? [`    ip daddr ${m.net} drop`] : [],
    `    ip daddr ${ugw} drop`,
    "    ip daddr 169.254.0.0/16 drop",
    "    meta nfproto ipv4 accept",
    "  }",
    "  chain input {",
    "    type filter hook input priority 0; policy drop;",
    '    iif "lo" accept',
    mgmtIn(m),
    "    ct state established,related accept",
    "  }",
    "  chain forward { type filter hook forward priority 0; policy drop; }",
    "}",
  );
}
