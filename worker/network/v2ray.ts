import { isDnsName, NetworkValueError, port } from "./values.js";
import { PROXY_MARK } from "./rulesets.js";

/**
 * The proxy engine's configuration (docs/egress.md#mode-proxy): v2ray 4.34 (Debian) as a transparent
 * proxy — a TPROXY `dokodemo-door` inbound on 127.0.0.1:12345 — with one outbound translated from
 * the egress's sing-box `proxy_config` (docs/api.md#egress-validation subset). Every outbound socket carries SO_MARK 255,
 * the only mark the kill switch lets onto the underlay, and only toward the proxy server.
 */

export const PROXY_TYPES = ["shadowsocks", "vmess", "trojan", "socks", "http"] as const;
export type ProxyType = (typeof PROXY_TYPES)[number];

/** The accepted subset of a sing-box outbound (docs/api.md#egress-validation), secrets included. */
export interface SingBoxOutbound {
  type: ProxyType;
  server: string;
  server_port: number;
  network?: "tcp";
  method?: string;
  password?: string;
  username?: string;
  uuid?: string;
  security?: string;
  alter_id?: number;
  version?: string;
  tls?: { enabled?: boolean; server_name?: string; insecure?: boolean; alpn?: string[]; certificate?: string };
  tag?: string;
}

const SS_METHODS = ["aes-128-gcm", "aes-256-gcm", "chacha20-ietf-poly1305"];
const VMESS_SECURITY = ["auto", "aes-128-gcm", "chacha20-poly1305", "none"];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PEM_LINE = /^(-----(BEGIN|END) [A-Z0-9 ]+-----|[A-Za-z0-9+/=]{1,76})$/;

/** TCP-only egresses (docs/egress.md#mode-proxy `udp: blocked`): http always; the others when declared `network: "tcp"`. */
export function isTcpOnly(cfg: Pick<SingBoxOutbound, "type" | "network">): boolean {
  return cfg.type === "http" || cfg.network === "tcp";
}

function str(v: unknown, what: string, min = 1, max = 256): string {
  if (typeof v !== "string" || [...v].length < min || [...v].length > max) {
    throw new NetworkValueError(`proxy_config.${what} must be a string of ${min}-${max} characters`);
  }
  return v;
}

function pemLines(pem: unknown): string[] {
  if (typeof pem !== "string") throw new NetworkValueError("proxy_config.tls.certificate must be a PEM string");
  const ls = pem.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  if (ls.length < 3 || !ls[0]!.startsWith("-----BEGIN ") || !ls.at(-1)!.startsWith("-----END ") || !ls.every((l) => PEM_LINE.test(l))) {
    throw new NetworkValueError("proxy_config.tls.certificate is not a PEM certificate");
  }
  return ls;
}

/**
 * TLS of trojan and TLS http (docs/egress.md#mode-proxy): the server name is `tls.server_name`, else the configured
 * server when it is a DNS name (never the resolved address). A given certificate is pinned and
 * system roots are then not trusted; insecure mode is never used.
 */
function tlsSettings(cfg: SingBoxOutbound): Record<string, unknown> {
  const tls = cfg.tls ?? {};
  if (tls.insecure) throw new NetworkValueError("proxy_config.tls.insecure is not supported");
  const serverName = tls.server_name ?? (isDnsName(cfg.server) ? cfg.server.replace(/\.$/, "") : undefined);
  if (serverName !== undefined && !isDnsName(serverName)) throw new NetworkValueError("proxy_config.tls.server_name is not a DNS name");
  const out: Record<string, unknown> = {};
  if (serverName) out.serverName = serverName;
  if (tls.alpn !== undefined) {
    if (!Array.isArray(tls.alpn) || tls.alpn.length > 8) throw new NetworkValueError("proxy_config.tls.alpn must be at most 8 strings");
    out.alpn = tls.alpn.map((a, i) => str(a, `tls.alpn[${i}]`, 1, 64));
  }
  out.allowInsecure = false;
  if (tls.certificate !== undefined) {
    out.disableSystemRoot = true;
    out.certificates = [{ usage: "verify", certificate: pemLines(tls.certificate) }];
  }
  return out;
}

function users(cfg: SingBoxOutbound): { users?: { user: string; pass: string }[] } {
  if (cfg.username === undefined) {
    if (cfg.password !== undefined) throw new NetworkValueError("proxy_config.password needs a username");
    return {};
  }
  return { users: [{ user: str(cfg.username, "username", 1, 255), pass: cfg.password === undefined ? "" : str(cfg.password, "password") }] };
}

/**
 * The v2ray outbound for a sing-box outbound (docs/egress.md#mode-proxy table). `address` is the resolved IPv4 of
 * `server`; the kill switch pins the same address.
 */
export function translateOutbound(cfg: SingBoxOutbound, address: string): Record<string, unknown> {
  const P = port(cfg.server_port, "proxy_config.server_port");
  const sockopt = { mark: PROXY_MARK };
  switch (cfg.type) {
    case "shadowsocks": {
      if (!SS_METHODS.includes(cfg.method ?? "")) throw new NetworkValueError("proxy_config.method is not supported");
      return {
        tag: "proxy",
        protocol: "shadowsocks",
        settings: { servers: [{ address, port: P, method: cfg.method, password: str(cfg.password, "password") }] },
        streamSettings: { sockopt },
      };
    }
    case "vmess": {
      if (typeof cfg.uuid !== "string" || !UUID.test(cfg.uuid)) throw new NetworkValueError("proxy_config.uuid is not a UUID");
      const security = cfg.security ?? "auto";
      if (!VMESS_SECURITY.includes(security)) throw new NetworkValueError("proxy_config.security is not supported");
      const alterId = cfg.alter_id ?? 0;
      if (!Number.isInteger(alterId) || alterId < 0 || alterId > 65535) throw new NetworkValueError("proxy_config.alter_id must be 0..65535");
      return {
        tag: "proxy",
        protocol: "vmess",
        settings: { vnext: [{ address, port: P, users: [{ id: cfg.uuid.toLowerCase(), alterId, security }] }] },
        streamSettings: { sockopt },
      };
    }
    case "trojan": {
      if (cfg.tls && cfg.tls.enabled === false) throw new NetworkValueError("proxy_config.tls.enabled must be true for trojan");
      return {
        tag: "proxy",
        protocol: "trojan",
        settings: { servers: [{ address, port: P, password: str(cfg.password, "password") }] },
        streamSettings: { security: "tls", tlsSettings: tlsSettings(cfg), sockopt },
      };
    }
    case "socks": {
      if (cfg.version !== undefined && cfg.version !== "5") throw new NetworkValueError("proxy_config.version must be \"5\"");
      return {
        tag: "proxy",
        protocol: "socks",
        settings: { servers: [{ address, port: P, ...users(cfg) }] },
        streamSettings: { sockopt },
      };
    }
    case "http": {
      const tls = cfg.tls?.enabled === true;
      return {
        tag: "proxy",
        protocol: "http",
        settings: { servers: [{ address, port: P, ...users(cfg) }] },
        streamSettings: tls ? { security: "tls", tlsSettings: tlsSettings(cfg), sockopt } : { sockopt },
      };
    }
    default:
      throw new NetworkValueError(`proxy_config.type ${(cfg as { type?: unknown }).type as string} is not supported`);
  }
}

/**
 * The whole v2ray.json (docs/egress.md#mode-proxy). For a TCP-only egress, UDP that reaches the inbound goes to a
 * blackhole outbound: "UDP that a type cannot carry is dropped" made explicit, rather than left to
 * each protocol's failure mode (DNS of such egresses never reaches v2ray: it goes to the unbound
 * stub by mark 2, and the stub asks over TCP).
 */
export function renderV2rayConfig(cfg: SingBoxOutbound, address: string): string {
  const outbound = translateOutbound(cfg, address);
  const tcpOnly = isTcpOnly(cfg);
  const doc = {
    log: { loglevel: "warning" },
    inbounds: [
      {
        tag: "tproxy",
        listen: "127.0.0.1",
        port: 12345,
        protocol: "dokodemo-door",
        settings: { network: "tcp,udp", followRedirect: true },
        streamSettings: { sockopt: { tproxy: "tproxy" } },
      },
    ],
    outbounds: tcpOnly ? [outbound, { tag: "block", protocol: "blackhole", settings: {} }] : [outbound],
    routing: {
      domainStrategy: "AsIs",
      rules: tcpOnly ? [{ type: "field", network: "udp", outboundTag: "block" }] : [],
    },
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}
