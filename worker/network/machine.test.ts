import { describe, expect, it } from "vitest";
import { renderGatewayFiles } from "./gateway-files.js";
import { collapseCidrs, localAddresses, machineGuardOf } from "./machine.js";
import { renderBlockedRuleset } from "./rulesets.js";

/**
 * The machine guard's pure parts (issue 10 §4): which destinations it holds and where the
 * rulesets put it. The drill (test/docker/tenant-isolation-drill.test.ts) proves it against the
 * real engine, in every mode, from inside hosts.
 */

const MGMT = { src: "198.18.0.1", net: "198.18.0.0/24" };
const underlay = { name: "ccp-lab-inet", gateway: "203.0.113.1", subnet: "203.0.113.0/24" };
const networks = [
  underlay,
  { name: "bridge", gateway: "", subnet: "172.17.0.0/16" },
  { name: "ccp-lab-mgmt", gateway: "198.18.0.1", subnet: "198.18.0.0/24" },
  { name: "compose_default", gateway: "172.18.0.1", subnet: "172.18.0.0/16" },
  { name: "odd", gateway: "", subnet: "0.0.0.0/0" },
];
const guard = machineGuardOf(underlay, networks, ["192.0.2.2", "172.17.0.1", "203.0.113.1", "198.18.0.1"]);

describe("machine guard: the destinations", () => {
  it("holds the machine's addresses and every Docker network but the underlay, without overlaps", () => {
    expect(guard).toEqual({
      machine: ["172.17.0.0/16", "172.18.0.0/16", "192.0.2.2", "198.18.0.0/24", "203.0.113.1"],
      underlayNet: "203.0.113.0/24",
    });
  });

  it("collapses contained ranges and clears host bits (nft refuses both in one interval set)", () => {
    expect(collapseCidrs(["10.1.2.3", "10.0.0.0/8", "172.18.5.1/16", "172.18.0.1", "192.0.2.2", "192.0.2.2/32"])).toEqual([
      "10.0.0.0/8",
      "172.18.0.0/16",
      "192.0.2.2",
    ]);
  });

  it("reads IPv4 interface addresses, loopback and IPv6 left out", () => {
    const ifaces = {
      lo: [{ address: "127.0.0.1", family: "IPv4", internal: true }],
      eth0: [
        { address: "192.0.2.2", family: "IPv4", internal: false },
        { address: "fd00::2", family: "IPv6", internal: false },
      ],
      docker0: [{ address: "172.17.0.1", family: "IPv4", internal: false }],
    } as unknown as Parameters<typeof localAddresses>[0];
    expect(localAddresses(ifaces)).toEqual(["192.0.2.2", "172.17.0.1"]);
  });
});

describe("machine guard: the rulesets", () => {
  const chain = (ruleset: string) => ruleset.slice(ruleset.indexOf("  chain machine_guard {"), ruleset.indexOf("  }", ruleset.indexOf("  chain machine_guard {")) + 4);

  it("wireguard: after conntrack, the engine's packets, control-plane replies and DNS pass, the machine is dropped", () => {
    const f = renderGatewayFiles(
      {
        mode: "wireguard",
        mgmt: MGMT,
        underlayGateway: "203.0.113.1",
        guard,
        privateKey: Buffer.alloc(32, 1).toString("base64"),
        peerPublicKey: Buffer.alloc(32, 2).toString("base64"),
        presharedKey: null,
        endpoint: "203.0.113.20",
        endpointPort: 51820,
        allowedIps: "0.0.0.0/0",
        address: "198.51.100.2/32",
        dns: "203.0.113.53",
        mtu: 1420,
      },
      1,
    );
    expect(chain(f["ruleset.nft"])).toBe(
      [
        "  chain machine_guard {",
        "    type filter hook output priority -180; policy accept;",
        "    meta mark 51820 accept",
        "    ip daddr 127.0.0.0/8 accept",
        "    ip daddr 198.18.0.1 tcp sport { 22, 6901 } ct state established accept",
        "    ip daddr 203.0.113.53 meta l4proto { tcp, udp } th dport 53 accept",
        "    ip daddr { 172.17.0.0/16, 172.18.0.0/16, 192.0.2.2/32, 198.18.0.0/24, 203.0.113.1/32 } drop",
        "  }\n",
      ].join("\n"),
    );
  });

  it("proxy: the engine's mark passes; the chain runs before the TPROXY marking (mangle -150)", () => {
    const f = renderGatewayFiles(
      {
        mode: "proxy",
        mgmt: MGMT,
        underlayGateway: "203.0.113.1",
        guard,
        outbound: { type: "shadowsocks", server: "203.0.113.21", server_port: 8388, method: "chacha20-ietf-poly1305", password: "p" },
        server: "203.0.113.21",
        dns: "203.0.113.53",
      },
      1,
    );
    const c = chain(f["ruleset.nft"]);
    expect(c).toContain("    meta mark 255 accept\n");
    expect(c).toContain("203.0.113.1/32 } drop\n");
    expect(c).not.toContain("172.16.0.0/12");
  });

  it("direct: also the private ranges, except the underlay subnet", () => {
    const f = renderGatewayFiles({ mode: "direct", mgmt: MGMT, underlayGateway: "203.0.113.1", guard, dns: "203.0.113.53" }, 1);
    const c = chain(f["ruleset.nft"]);
    expect(c).not.toContain("meta mark");
    expect(c).toContain(
      "    ip daddr != 203.0.113.0/24 ip daddr { 10.0.0.0/8, 100.64.0.0/10, 172.16.0.0/12, 192.168.0.0/16, 198.18.0.0/15 } drop\n",
    );
  });

  it("blocked has no route and drops all output anyway; a config without a guard renders none", () => {
    expect(renderGatewayFiles({ mode: "blocked", mgmt: MGMT }, 1)["ruleset.nft"]).toBe(renderBlockedRuleset({ mgmt: MGMT }));
    expect(renderGatewayFiles({ mode: "direct", mgmt: MGMT, underlayGateway: "203.0.113.1", dns: "203.0.113.53" }, 1)["ruleset.nft"]).not.toContain(
      "machine_guard",
    );
  });
});
