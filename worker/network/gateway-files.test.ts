import { describe, expect, it } from "vitest";
import { type GatewayConfig, allowedIpsValue, renderGatewayFiles } from "./gateway-files.js";
import { renderBlockedRuleset, renderProxyRuleset, renderWireguardRuleset } from "./rulesets.js";
import { canonicalIp, inAnyCidr, parseHostPort } from "./values.js";

const KEY_A = Buffer.alloc(32, 1).toString("base64");
const KEY_B = Buffer.alloc(32, 2).toString("base64");
const KEY_C = Buffer.alloc(32, 3).toString("base64");
const MGMT = { src: "172.20.0.1", net: "172.20.0.0/16" };

const wg: GatewayConfig = {
  mode: "wireguard",
  mgmt: MGMT,
  underlayGateway: "203.0.113.1",
  privateKey: KEY_A,
  peerPublicKey: KEY_B,
  presharedKey: KEY_C,
  endpoint: "203.0.113.20",
  endpointPort: 51820,
  allowedIps: "0.0.0.0/0",
  address: "198.51.100.2/32",
  dns: "203.0.113.53",
  mtu: 1420,
};

describe("gateway files (docs/egress.md#gateway)", () => {
  it("WireGuard mode", () => {
    const f = renderGatewayFiles(wg, 7);
    expect(f.mode).toBe("wireguard\n");
    expect(f.generation).toBe("7\n");
    expect(f["wg0.conf"]).toBe(
      [
        "[Interface]",
        `PrivateKey = ${KEY_A}`,
        "FwMark = 51820",
        "",
        "[Peer]",
        `PublicKey = ${KEY_B}`,
        `PresharedKey = ${KEY_C}`,
        "Endpoint = 203.0.113.20:51820",
        "AllowedIPs = 0.0.0.0/0",
        "PersistentKeepalive = 25",
        "",
      ].join("\n"),
    );
    expect(f["routing.env"]).toBe("MGMT_NET=172.20.0.0/16\nUNDERLAY_GW=203.0.113.1\nWG_ADDRESS=198.51.100.2/32\nWG_MTU=1420\n");
    expect(f["resolv.conf"]).toBe("nameserver 203.0.113.53\n");
    expect(f["v2ray.json"]).toBe("");
    expect(f["unbound.conf"]).toBe("");
    expect(f["ruleset.nft"]).toBe(renderWireguardRuleset({ dns: "203.0.113.53", endpoint: "203.0.113.20", endpointPort: 51820, mgmt: MGMT }));
  });

  it("the WireGuard ruleset is docs/egress.md#kill-switch with the values substituted", () => {
    const r = renderWireguardRuleset({ dns: "203.0.113.53", endpoint: "203.0.113.20", endpointPort: 51820, mgmt: MGMT });
    expect(r.startsWith("flush ruleset\ntable inet ccp {\n")).toBe(true);
    // Refused at once (REJECT), so a lookup elsewhere fails in milliseconds instead of timing out.
    expect(r).toContain("    meta l4proto { tcp, udp } th dport 53 ip daddr != 203.0.113.53 reject with icmpx type admin-prohibited\n");
    expect(r).toContain("    tcp dport 853 reject with icmpx type admin-prohibited\n");
    expect(r).toContain("    meta mark 51820 ip daddr 203.0.113.20 udp dport 51820 accept\n");
    expect(r).toContain("    ip saddr 203.0.113.20 udp sport 51820 accept\n");
    expect(r).toContain("    ip daddr 172.20.0.1 tcp sport { 22, 6901 } ct state established accept\n");
    expect(r).toContain("    ip saddr 172.20.0.1 tcp dport { 22, 6901 } accept\n");
    expect(r).toContain("    ip daddr 169.254.0.0/16 drop\n");
    // Without a management network (test gateways) nothing is accepted from it.
    const noMgmt = renderWireguardRuleset({ dns: "203.0.113.53", endpoint: "203.0.113.20", endpointPort: 51820, mgmt: null });
    expect(noMgmt).not.toMatch(/6901/);
  });

  it("proxy mode, UDP-capable and TCP-only", () => {
    const base = { mgmt: MGMT, underlayGateway: "203.0.113.1", dns: "203.0.113.53" };
    const ss = renderGatewayFiles(
      { ...base, mode: "proxy", server: "203.0.113.21", outbound: { type: "shadowsocks", server: "203.0.113.21", server_port: 8388, method: "aes-128-gcm", password: "x" } },
      1,
    );
    expect(ss["routing.env"]).toBe("MGMT_NET=172.20.0.0/16\nUNDERLAY_GW=203.0.113.1\nTCP_ONLY=0\n");
    expect(ss["resolv.conf"]).toBe("nameserver 203.0.113.53\n");
    expect(ss["unbound.conf"]).toBe("");
    expect(ss["wg0.conf"]).toBe("");
    expect(ss["ruleset.nft"]).toContain("    udp dport 53 meta mark set 1 return\n");
    expect(JSON.parse(ss["v2ray.json"]).outbounds[0].settings.servers[0].address).toBe("203.0.113.21");

    const http = renderGatewayFiles(
      { ...base, mode: "proxy", server: "203.0.113.25", outbound: { type: "http", server: "203.0.113.25", server_port: 8888 } },
      2,
    );
    expect(http["routing.env"]).toContain("TCP_ONLY=1\n");
    expect(http["resolv.conf"]).toBe("nameserver 203.0.113.53\noptions use-vc\n");
    expect(http["ruleset.nft"]).toContain("    udp dport 53 meta mark set 2 return\n");
    expect(http["unbound.conf"]).toContain("  forward-addr: 203.0.113.53\n");
    expect(http["unbound.conf"]).toContain("  tcp-upstream: yes\n");
    expect(http["unbound.conf"]).toContain("  interface: 127.0.0.1@5353\n");
  });

  it("the proxy ruleset enforces the kill switch in postrouting, pinned to the proxy", () => {
    const r = renderProxyRuleset({ dns: "203.0.113.53", proxy: "203.0.113.21", tcpOnly: false, mgmt: MGMT });
    const post = r.slice(r.indexOf("chain postrouting"), r.indexOf("chain input"));
    expect(post).toContain("policy drop;");
    expect(post).toContain("meta mark 255 ip daddr 203.0.113.21 accept");
    expect(r).toContain('iif "lo" meta mark 1 meta l4proto { tcp, udp } tproxy ip to 127.0.0.1:12345 accept');
    expect(r).toContain("meta mark 2 udp dport 53 redirect to :5353");
  });

  it("blocked mode: no engine files, loopback resolver, only management in and out", () => {
    const f = renderGatewayFiles({ mode: "blocked", mgmt: MGMT }, 3);
    expect(f.mode).toBe("blocked\n");
    expect(f["routing.env"]).toBe("MGMT_NET=172.20.0.0/16\nUNDERLAY_GW=\n");
    expect(f["resolv.conf"]).toBe("nameserver 127.0.0.1\n");
    expect(f["ruleset.nft"]).toBe(renderBlockedRuleset({ mgmt: MGMT }));
    expect(f["ruleset.nft"]).toBe(
      [
        "flush ruleset",
        "table inet ccp {",
        "  chain output {",
        "    type filter hook output priority 0; policy drop;",
        '    oif "lo" accept',
        "    ip daddr 172.20.0.1 tcp sport { 22, 6901 } ct state established accept",
        "    reject with icmpx type admin-prohibited",
        "  }",
        "  chain input {",
        "    type filter hook input priority 0; policy drop;",
        '    iif "lo" accept',
        "    ip saddr 172.20.0.1 tcp dport { 22, 6901 } accept",
        "  }",
        "  chain forward { type filter hook forward priority 0; policy drop; }",
        "}",
        "",
      ].join("\n"),
    );
  });

  it("direct mode pins DNS and drops the control plane", () => {
    const f = renderGatewayFiles({ mode: "direct", mgmt: MGMT, underlayGateway: "172.21.0.1", dns: "203.0.113.53" }, 1);
    expect(f["resolv.conf"]).toBe("nameserver 203.0.113.53\n");
    expect(f["routing.env"]).toBe("MGMT_NET=172.20.0.0/16\nUNDERLAY_GW=172.21.0.1\n");
    expect(f["ruleset.nft"]).toContain("ip daddr 172.20.0.0/16 drop");
    expect(f["ruleset.nft"]).toContain("ip daddr 172.21.0.1 drop");
    expect(f["ruleset.nft"]).toContain("th dport 53 ip daddr != 203.0.113.53 reject with icmpx type admin-prohibited");
  });

  it("never interpolates an unvalidated value", () => {
    const bad: [string, GatewayConfig][] = [
      ["endpoint", { ...wg, endpoint: "203.0.113.20; flush ruleset" } as GatewayConfig],
      ["dns", { ...wg, dns: "203.0.113.53 accept" } as GatewayConfig],
      ["key", { ...wg, privateKey: "abc\n[Peer]" } as GatewayConfig],
      ["address", { ...wg, address: "198.51.100.2/33" } as GatewayConfig],
      ["allowed", { ...wg, allowedIps: "0.0.0.0/0\nEndpoint = 1.2.3.4:1" } as GatewayConfig],
      ["mtu", { ...wg, mtu: 100 } as GatewayConfig],
      ["mgmt", { mode: "blocked", mgmt: { src: "172.20.0.1 accept", net: "172.20.0.0/16" } }],
      ["port", { ...wg, endpointPort: 0 } as GatewayConfig],
    ];
    for (const [what, c] of bad) expect(() => renderGatewayFiles(c, 1), what).toThrow();
  });

  it("normalises AllowedIPs", () => {
    expect(allowedIpsValue("10.0.0.0/8, 203.0.113.53, ::/0")).toBe("10.0.0.0/8, 203.0.113.53/32");
    expect(allowedIpsValue("10.1.2.3/8")).toBe("10.0.0.0/8");
    expect(() => allowedIpsValue("::/0")).toThrow();
  });
});

describe("address helpers", () => {
  it("canonicalises IP literals", () => {
    expect(canonicalIp(" 203.0.113.20 ")).toBe("203.0.113.20");
    expect(canonicalIp("::ffff:203.0.113.20")).toBe("203.0.113.20");
    expect(canonicalIp("::FFFF:cb00:7114")).toBe("203.0.113.20");
    expect(canonicalIp("2001:DB8:0:0:0:0:0:1")).toBe("2001:db8::1");
    expect(canonicalIp("2001:db8:0:0:1:0:0:1")).toBe("2001:db8::1:0:0:1");
    expect(canonicalIp("nope")).toBeNull();
  });

  it("matches CIDRs", () => {
    expect(inAnyCidr("203.0.113.20", [{ address: "203.0.113.0", prefix: 24 }])).toBe(true);
    expect(inAnyCidr("203.0.114.20", [{ address: "203.0.113.0", prefix: 24 }])).toBe(false);
    expect(inAnyCidr("1.2.3.4", [{ address: "0.0.0.0", prefix: 0 }])).toBe(true);
  });

  it("parses endpoints", () => {
    expect(parseHostPort("203.0.113.20:51820", "e")).toEqual({ host: "203.0.113.20", port: 51820 });
    expect(parseHostPort("vpn.example.test:1", "e")).toEqual({ host: "vpn.example.test", port: 1 });
    expect(() => parseHostPort("vpn:0", "e")).toThrow();
    expect(() => parseHostPort("a b:1", "e")).toThrow();
  });
});
