import { describe, expect, it } from "vitest";
import { isTcpOnly, renderV2rayConfig, translateOutbound } from "./v2ray.js";

const MARK = { sockopt: { mark: 255 } };
const PEM = [
  "-----BEGIN CERTIFICATE-----",
  "MIIBszCCAVmgAwIBAgIUQ2Vy",
  "dGlmaWNhdGVCb2R5QmFzZTY0==",
  "-----END CERTIFICATE-----",
].join("\n");

describe("sing-box → v2ray outbound translation (docs/egress.md#mode-proxy)", () => {
  it("shadowsocks", () => {
    const out = translateOutbound(
      { type: "shadowsocks", server: "ss.example.test", server_port: 8388, method: "chacha20-ietf-poly1305", password: "p\"ss" },
      "203.0.113.21",
    );
    expect(out).toEqual({
      tag: "proxy",
      protocol: "shadowsocks",
      settings: { servers: [{ address: "203.0.113.21", port: 8388, method: "chacha20-ietf-poly1305", password: 'p"ss' }] },
      streamSettings: MARK,
    });
  });

  it("vmess (alter_id and security default to 0 and auto)", () => {
    const uuid = "6F1C3A1E-2B3C-4D5E-8F90-0A1B2C3D4E5F";
    expect(translateOutbound({ type: "vmess", server: "203.0.113.22", server_port: 10086, uuid }, "203.0.113.22")).toEqual({
      tag: "proxy",
      protocol: "vmess",
      settings: { vnext: [{ address: "203.0.113.22", port: 10086, users: [{ id: uuid.toLowerCase(), alterId: 0, security: "auto" }] }] },
      streamSettings: MARK,
    });
    const custom = translateOutbound(
      { type: "vmess", server: "203.0.113.22", server_port: 1, uuid, alter_id: 4, security: "chacha20-poly1305" },
      "203.0.113.22",
    );
    expect(custom.settings).toMatchObject({ vnext: [{ users: [{ alterId: 4, security: "chacha20-poly1305" }] }] });
  });

  it("trojan: TLS with the original server name, the certificate pinned, never insecure", () => {
    const out = translateOutbound(
      { type: "trojan", server: "trojan.egress.test", server_port: 443, password: "tp", tls: { enabled: true, certificate: PEM, alpn: ["h2"] } },
      "203.0.113.23",
    );
    expect(out).toEqual({
      tag: "proxy",
      protocol: "trojan",
      settings: { servers: [{ address: "203.0.113.23", port: 443, password: "tp" }] },
      streamSettings: {
        security: "tls",
        tlsSettings: {
          serverName: "trojan.egress.test",
          alpn: ["h2"],
          allowInsecure: false,
          disableSystemRoot: true,
          certificates: [{ usage: "verify", certificate: PEM.split("\n") }],
        },
        sockopt: { mark: 255 },
      },
    });
    // tls.server_name wins over the server; an IP server without a name gives no serverName.
    const named = translateOutbound(
      { type: "trojan", server: "203.0.113.23", server_port: 443, password: "tp", tls: { server_name: "trojan.egress.test" } },
      "203.0.113.23",
    );
    expect((named.streamSettings as { tlsSettings: object }).tlsSettings).toEqual({ serverName: "trojan.egress.test", allowInsecure: false });
    const bare = translateOutbound({ type: "trojan", server: "203.0.113.23", server_port: 443, password: "tp" }, "203.0.113.23");
    expect((bare.streamSettings as { tlsSettings: object }).tlsSettings).toEqual({ allowInsecure: false });
    expect(() =>
      translateOutbound({ type: "trojan", server: "x.test", server_port: 443, password: "tp", tls: { insecure: true } }, "203.0.113.23"),
    ).toThrow(/insecure/);
    expect(() =>
      translateOutbound({ type: "trojan", server: "x.test", server_port: 443, password: "tp", tls: { certificate: "not a pem" } }, "203.0.113.23"),
    ).toThrow(/PEM/);
  });

  it("socks: users only with credentials", () => {
    expect(translateOutbound({ type: "socks", server: "203.0.113.24", server_port: 1080 }, "203.0.113.24")).toEqual({
      tag: "proxy",
      protocol: "socks",
      settings: { servers: [{ address: "203.0.113.24", port: 1080 }] },
      streamSettings: MARK,
    });
    const withUser = translateOutbound(
      { type: "socks", server: "203.0.113.24", server_port: 1080, username: "u", password: "p", version: "5" },
      "203.0.113.24",
    );
    expect(withUser.settings).toEqual({ servers: [{ address: "203.0.113.24", port: 1080, users: [{ user: "u", pass: "p" }] }] });
    expect(() => translateOutbound({ type: "socks", server: "s.test", server_port: 1080, password: "p" }, "203.0.113.24")).toThrow();
  });

  it("http: plain, and with TLS when tls.enabled", () => {
    expect(translateOutbound({ type: "http", server: "203.0.113.25", server_port: 8888 }, "203.0.113.25")).toEqual({
      tag: "proxy",
      protocol: "http",
      settings: { servers: [{ address: "203.0.113.25", port: 8888 }] },
      streamSettings: MARK,
    });
    const tls = translateOutbound(
      { type: "http", server: "proxy.example.test", server_port: 443, username: "u", password: "p", tls: { enabled: true } },
      "203.0.113.25",
    );
    expect(tls).toEqual({
      tag: "proxy",
      protocol: "http",
      settings: { servers: [{ address: "203.0.113.25", port: 443, users: [{ user: "u", pass: "p" }] }] },
      streamSettings: { security: "tls", tlsSettings: { serverName: "proxy.example.test", allowInsecure: false }, sockopt: { mark: 255 } },
    });
  });

  it("rejects what it cannot translate", () => {
    expect(() => translateOutbound({ type: "vless" as "http", server: "a.test", server_port: 1 }, "203.0.113.1")).toThrow(/not supported/);
    expect(() => translateOutbound({ type: "shadowsocks", server: "a.test", server_port: 1, method: "rc4", password: "x" }, "203.0.113.1")).toThrow();
    expect(() => translateOutbound({ type: "http", server: "a.test", server_port: 70000 }, "203.0.113.1")).toThrow(/port/);
  });
});

describe("v2ray.json", () => {
  it("has the TPROXY inbound and the one outbound; TCP-only egresses blackhole UDP", () => {
    const ss = JSON.parse(
      renderV2rayConfig({ type: "shadowsocks", server: "203.0.113.21", server_port: 8388, method: "aes-256-gcm", password: "x" }, "203.0.113.21"),
    );
    expect(ss.inbounds).toEqual([
      {
        tag: "tproxy",
        listen: "127.0.0.1",
        port: 12345,
        protocol: "dokodemo-door",
        settings: { network: "tcp,udp", followRedirect: true },
        streamSettings: { sockopt: { tproxy: "tproxy" } },
      },
    ]);
    expect(ss.outbounds).toHaveLength(1);
    expect(ss.routing).toEqual({ domainStrategy: "AsIs", rules: [] });
    expect(ss.log).toEqual({ loglevel: "warning" });

    const http = JSON.parse(renderV2rayConfig({ type: "http", server: "203.0.113.25", server_port: 8888 }, "203.0.113.25"));
    expect(http.outbounds.map((o: { tag: string }) => o.tag)).toEqual(["proxy", "block"]);
    expect(http.routing.rules).toEqual([{ type: "field", network: "udp", outboundTag: "block" }]);
  });

  it("knows which egresses are TCP-only", () => {
    expect(isTcpOnly({ type: "http" })).toBe(true);
    expect(isTcpOnly({ type: "socks", network: "tcp" })).toBe(true);
    expect(isTcpOnly({ type: "socks" })).toBe(false);
    expect(isTcpOnly({ type: "shadowsocks" })).toBe(false);
  });
});
