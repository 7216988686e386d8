import { X509Certificate } from "node:crypto";
import { z } from "zod";
import { egressHealths, egressStatuses, tunnelTypes } from "../../db/schema/index.js";
import { CONTROL_CHARS, freeTextField, paginationShape } from "../../validation.js";
import { MASK } from "./render.js";
import { isWgKey } from "./wg-keys.js";

/**
 * Egress IP validation (docs/api.md#egress-validation). Field rules are zod schemas; the sing-box subset of
 * `proxy_config` is a hand-written checker so that every problem is reported with its dotted
 * field (`proxy_config.tls.insecure`) and unknown keys say `not supported` instead of being
 * dropped (a silently ignored `transport` or `detour` would change where traffic goes).
 */

export type TunnelType = (typeof tunnelTypes)[number];

// ---------------------------------------------------------------------------------------------
// Addresses and names

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
/** Dotted-decimal IPv4 without leading zeros (`010.0.0.1` is octal to some parsers: refused). */
export const isIpv4 = (v: string): boolean => IPV4.test(v);

function parseIpv6(input: string): number[] | null {
  if (!/^[0-9A-Fa-f:.]{2,45}$/.test(input)) return null;
  let s = input;
  if (s.includes(".")) {
    // Embedded IPv4 in the last 32 bits (`::ffff:192.0.2.1`): rewrite it as two hex groups.
    const cut = s.lastIndexOf(":");
    const v4 = s.slice(cut + 1);
    if (!isIpv4(v4)) return null;
    const o = v4.split(".").map(Number) as [number, number, number, number];
    s = `${s.slice(0, cut + 1)}${((o[0] << 8) | o[1]).toString(16)}:${((o[2] << 8) | o[3]).toString(16)}`;
  }
  const group = /^[0-9A-Fa-f]{1,4}$/;
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const parts = (h: string) => (h === "" ? [] : h.split(":"));
  const head = parts(halves[0]!);
  const tail = halves.length === 2 ? parts(halves[1]!) : [];
  if (![...head, ...tail].every((g) => group.test(g))) return null;
  const known = [...head, ...tail].map((g) => parseInt(g, 16));
  if (halves.length === 1) return known.length === 8 ? known : null;
  if (known.length > 7) return null; // `::` stands for at least one group
  return [...head.map((g) => parseInt(g, 16)), ...Array<number>(8 - known.length).fill(0), ...tail.map((g) => parseInt(g, 16))];
}

/** RFC 5952 text form: lowercase, no leading zeros, the first longest run (≥ 2) of zero groups as `::`. */
function formatIpv6(g: number[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(":");
  return best < 0 ? hex(g) : `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

/**
 * The canonical form of an IP literal, or null: IPv4 as is, IPv6 per RFC 5952, IPv4-mapped IPv6
 * (`::ffff:a.b.c.d`) as the IPv4 address. Zone ids and brackets are refused.
 */
export function canonicalIp(v: string): string | null {
  if (isIpv4(v)) return v;
  const g = parseIpv6(v);
  if (!g) return null;
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return `${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}`;
  }
  return formatIpv6(g);
}

const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
/**
 * A DNS host name (RFC 1123, at most 253 characters). An all-numeric last label is refused so
 * that `300.1.1.1` is not mistaken for a name.
 */
export function isDnsName(v: string): boolean {
  if (v.length < 1 || v.length > 253) return false;
  const labels = v.split(".");
  return labels.every((l) => LABEL.test(l)) && !/^\d+$/.test(labels[labels.length - 1]!);
}

export const isServerHost = (v: string): boolean => isIpv4(v) || isDnsName(v);

const isPort = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= 65535;

/** `host:port` with a DNS name or IPv4 host (the data plane is IPv4-only) and a port 1..65535. */
export function isEndpoint(v: string): boolean {
  const cut = v.lastIndexOf(":");
  if (cut <= 0) return false;
  const port = v.slice(cut + 1);
  return isServerHost(v.slice(0, cut)) && /^[1-9]\d{0,4}$/.test(port) && isPort(Number(port));
}

/** `addr/prefix` with the address canonicalised, or null. */
function canonicalCidr(v: string, opts: { v4Only?: boolean; minPrefix?: number } = {}): string | null {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(v);
  if (!m) return null;
  const v4 = isIpv4(m[1]!);
  const addr = v4 ? m[1]! : opts.v4Only ? null : parseIpv6(m[1]!) ? formatIpv6(parseIpv6(m[1]!)!) : null;
  if (!addr) return null;
  const prefix = Number(m[2]);
  if (String(prefix) !== m[2] || prefix < (opts.minPrefix ?? 0) || prefix > (v4 ? 32 : 128)) return null;
  return `${addr}/${prefix}`;
}

// ---------------------------------------------------------------------------------------------
// Field schemas

const refineString = (test: (v: string) => boolean, message: string) => z.string().refine(test, { message });

export const labelField = freeTextField(1, 100);
export const providerField = freeTextField(0, 100);
export const ipAddressField = z.string().transform((v, ctx) => {
  const ip = canonicalIp(v.trim());
  if (!ip) {
    ctx.addIssue({ code: "custom", message: "must be an IPv4 or IPv6 address" });
    return z.NEVER;
  }
  return ip;
});
export const ipv4Field = refineString(isIpv4, "must be an IPv4 address");
export const wgKeyField = refineString(isWgKey, "must be base64 of 32 bytes");
export const wgEndpointField = refineString(
  isEndpoint,
  "must be host:port with a DNS name or IPv4 address and a port 1-65535",
);
export const MAX_ALLOWED_IPS = 64;
export const wgAllowedIpsField = z.string().transform((v, ctx) => {
  const items = v.split(",").map((s) => s.trim());
  const cidrs = items.map((s) => canonicalCidr(s));
  if (items.length > MAX_ALLOWED_IPS) {
    ctx.addIssue({ code: "custom", message: `must list at most ${MAX_ALLOWED_IPS} CIDRs` });
    return z.NEVER;
  }
  if (cidrs.some((c) => c === null)) {
    ctx.addIssue({ code: "custom", message: "must be comma-separated CIDRs (address/prefix)" });
    return z.NEVER;
  }
  return cidrs.join(",");
});
export const wgPeerAddressField = z.string().transform((v, ctx) => {
  const cidr = canonicalCidr(v.trim(), { v4Only: true, minPrefix: 8 });
  if (!cidr) {
    ctx.addIssue({ code: "custom", message: "must be an IPv4 CIDR with a prefix of 8-32" });
    return z.NEVER;
  }
  return cidr;
});
/** A key on PUT, where `"***"` means "keep the stored value" (docs/api.md#secrets). */
const wgKeyOrMaskField = refineString((v) => v === MASK || isWgKey(v), `must be base64 of 32 bytes (or "${MASK}" to keep it)`);

// ---------------------------------------------------------------------------------------------
// proxy_config (the accepted sing-box outbound subset)

export const PROXY_TYPES = ["shadowsocks", "vmess", "socks", "trojan", "http"] as const;
export type ProxyType = (typeof PROXY_TYPES)[number];
export const SHADOWSOCKS_METHODS = ["aes-128-gcm", "aes-256-gcm", "chacha20-ietf-poly1305"] as const;
export const VMESS_SECURITIES = ["auto", "aes-128-gcm", "chacha20-poly1305", "none"] as const;

/** A validated sing-box outbound. Defaults (vmess `security`, trojan `tls`…) are applied by the data plane, not stored. */
export type ProxyConfig = { type: ProxyType; server: string; server_port: number } & Record<string, unknown>;

export interface ConfigIssue {
  path: string[];
  message: string;
}

const COMMON_KEYS = ["type", "server", "server_port", "tag"];
const TYPE_KEYS: Record<ProxyType, readonly string[]> = {
  shadowsocks: ["network", "method", "password"],
  vmess: ["network", "uuid", "security", "alter_id"],
  socks: ["network", "username", "password", "version"],
  trojan: ["network", "password", "tls"],
  http: ["username", "password", "tls"],
};
const TLS_KEYS = ["enabled", "server_name", "insecure", "alpn", "certificate"];

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const codePoints = (s: string) => [...s].length;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END CERTIFICATE-----/g;

/** One or more PEM certificates (a server certificate or a CA to pin), each parseable, nothing else. */
function isPemCertificates(v: string): boolean {
  const text = v.trim();
  const blocks = [...text.matchAll(PEM_BLOCK)];
  if (blocks.length === 0 || blocks.length > 16 || text.replace(PEM_BLOCK, "").trim() !== "") return false;
  try {
    for (const b of blocks) new X509Certificate(b[0]);
    return true;
  } catch {
    return false;
  }
}

function secretValueIssue(v: unknown, max: number): string | undefined {
  if (typeof v !== "string") return "must be a string";
  if (v === MASK) return `must be the actual value, not "${MASK}"`;
  const n = codePoints(v);
  if (n < 1 || n > max) return `must be 1-${max} characters`;
  return undefined;
}

function checkTls(tls: unknown, type: ProxyType, issues: ConfigIssue[]): Record<string, unknown> | undefined {
  const at = (k: string, message: string) => issues.push({ path: ["tls", k], message });
  if (!isPlainObject(tls)) {
    issues.push({ path: ["tls"], message: "must be an object" });
    return undefined;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(tls)) {
    if (!TLS_KEYS.includes(k)) {
      at(k, "not supported");
      continue;
    }
    let problem: string | undefined;
    switch (k) {
      case "enabled":
        if (typeof v !== "boolean") problem = "must be a boolean";
        else if (type === "trojan" && !v) problem = "must be true for trojan";
        break;
      case "server_name":
        if (typeof v !== "string" || !isDnsName(v)) problem = "must be a DNS name";
        break;
      case "insecure":
        // Certificate checks are never switched off; pin a certificate instead.
        if (v !== false) problem = "only false is accepted (pin the server certificate with tls.certificate instead)";
        break;
      case "alpn":
        if (
          !Array.isArray(v) ||
          v.length > 8 ||
          !v.every((p) => typeof p === "string" && p.length >= 1 && p.length <= 255 && !CONTROL_CHARS.test(p))
        ) {
          problem = "must be a list of at most 8 protocol names";
        }
        break;
      case "certificate":
        if (typeof v !== "string" || !isPemCertificates(v)) problem = "must be a PEM certificate";
        break;
    }
    if (problem) at(k, problem);
    else out[k] = v;
  }
  return out;
}

/**
 * Validate a `proxy_config` object. Paths in the issues are relative to `proxy_config`. Values
 * are kept as given (only validated keys are copied, so a `__proto__` key can never leak through).
 */
export function checkProxyConfig(input: unknown): { ok: true; value: ProxyConfig } | { ok: false; issues: ConfigIssue[] } {
  if (!isPlainObject(input)) return { ok: false, issues: [{ path: [], message: "must be an object" }] };
  const issues: ConfigIssue[] = [];
  const at = (k: string, message: string) => issues.push({ path: [k], message });
  const type = input.type;
  const known = typeof type === "string" && (PROXY_TYPES as readonly string[]).includes(type) ? (type as ProxyType) : null;
  if (type === undefined) at("type", "is required");
  else if (!known) at("type", `unsupported type (one of: ${PROXY_TYPES.join(", ")})`);

  const out: Record<string, unknown> = {};
  const allowed = known ? [...COMMON_KEYS, ...TYPE_KEYS[known]] : null;
  for (const [k, v] of Object.entries(input)) {
    if (k === "type") {
      if (known) out.type = known;
      continue;
    }
    const elsewhere = PROXY_TYPES.filter((t) => TYPE_KEYS[t].includes(k));
    if (!COMMON_KEYS.includes(k) && elsewhere.length === 0) {
      at(k, "not supported");
      continue;
    }
    if (allowed && !allowed.includes(k)) {
      at(k, `not supported for type ${known}`);
      continue;
    }
    if (!known) continue; // keys of some type: cannot judge them without a valid type
    let problem: string | undefined;
    switch (k) {
      case "server":
        if (typeof v !== "string" || !isServerHost(v)) problem = "must be a DNS name or an IPv4 address";
        break;
      case "server_port":
        if (!isPort(v)) problem = "must be an integer 1-65535";
        break;
      case "tag":
        if (typeof v !== "string" || v.length > 255 || CONTROL_CHARS.test(v)) problem = "must be a string of at most 255 characters";
        break;
      case "network":
        if (v !== "tcp") problem = 'only "tcp" is accepted (declares a TCP-only server)';
        break;
      case "method":
        if (typeof v !== "string" || !(SHADOWSOCKS_METHODS as readonly string[]).includes(v)) {
          problem = `must be one of: ${SHADOWSOCKS_METHODS.join(", ")}`;
        }
        break;
      case "password":
        problem = secretValueIssue(v, 256);
        break;
      case "username":
        if (typeof v !== "string" || codePoints(v) < 1 || codePoints(v) > 255) problem = "must be 1-255 characters";
        break;
      case "version":
        if (v !== "5") problem = 'only "5" is accepted';
        break;
      case "uuid":
        if (typeof v !== "string" || !UUID.test(v)) problem = v === MASK ? `must be the actual value, not "${MASK}"` : "must be a UUID";
        break;
      case "security":
        if (typeof v !== "string" || !(VMESS_SECURITIES as readonly string[]).includes(v)) {
          problem = `must be one of: ${VMESS_SECURITIES.join(", ")}`;
        }
        break;
      case "alter_id":
        if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 65535) problem = "must be an integer 0-65535";
        break;
      case "tls": {
        const tls = checkTls(v, known, issues);
        if (tls) out.tls = tls;
        continue;
      }
    }
    if (problem) at(k, problem);
    else out[k] = v;
  }

  if (known) {
    const required = ["server", "server_port", ...({ shadowsocks: ["method", "password"], vmess: ["uuid"], trojan: ["password"] } as Record<string, string[]>)[known] ?? []];
    for (const k of required) if (input[k] === undefined) at(k, "is required");
    if ((known === "socks" || known === "http") && input.password !== undefined && input.username === undefined) {
      at("password", "is only accepted together with username");
    }
  }
  return issues.length ? { ok: false, issues } : { ok: true, value: out as ProxyConfig };
}

const proxyConfigField = z
  .unknown()
  .transform((v, ctx) => {
    const r = checkProxyConfig(v);
    if (r.ok) return r.value;
    for (const i of r.issues) ctx.addIssue({ code: "custom", message: i.message, path: i.path });
    return z.NEVER;
  })
  .meta({ description: "A sing-box outbound object (shadowsocks, vmess, socks, trojan or http; docs/api.md#egress-validation)" });

// ---------------------------------------------------------------------------------------------
// Bodies

export const WG_FIELDS = [
  "wg_endpoint",
  "wg_public_key",
  "wg_preshared_key",
  "wg_allowed_ips",
  "wg_dns_server",
  "wg_peer_address",
  "wg_private_key",
  "regenerate_wg_client_key",
] as const;
export const PROXY_FIELDS = ["proxy_config", "proxy_dns_server"] as const;
const REQUIRED_ON_CREATE: Record<TunnelType, readonly string[]> = {
  wireguard: ["wg_endpoint", "wg_public_key", "wg_dns_server", "wg_peer_address"],
  proxy: ["proxy_config"],
};

/** The fields of the other tunnel type (docs/api.md#egress-validation: `not allowed for tunnel_type …`). */
export function foreignFieldIssues(type: TunnelType, body: Record<string, unknown>): ConfigIssue[] {
  const foreign: readonly string[] = type === "wireguard" ? PROXY_FIELDS : WG_FIELDS;
  return foreign.filter((f) => body[f] !== undefined).map((f) => ({ path: [f], message: `not allowed for tunnel_type ${type}` }));
}

const addIssues = (ctx: z.RefinementCtx, issues: ConfigIssue[]) => {
  for (const i of issues) ctx.addIssue({ code: "custom", message: i.message, path: i.path });
};

/** `POST /v1/admin/egress-ips`. */
export const createEgressInput = z
  .strictObject({
    label: labelField,
    ip_address: ipAddressField,
    tunnel_type: z.enum(tunnelTypes),
    provider: providerField.default("manual"),
    status: z.enum(egressStatuses).default("available"),
    wg_endpoint: wgEndpointField.optional(),
    wg_public_key: wgKeyField.optional(),
    wg_preshared_key: wgKeyField.nullish(),
    wg_allowed_ips: wgAllowedIpsField.optional(),
    wg_dns_server: ipv4Field.optional(),
    wg_peer_address: wgPeerAddressField.optional(),
    wg_private_key: wgKeyField.optional(),
    proxy_config: proxyConfigField.optional(),
    proxy_dns_server: ipv4Field.nullish(),
  })
  .superRefine(
    (v, ctx) => {
      // Runs even when single fields failed (`when`), so one answer lists every problem; it only
      // looks at key presence and at tunnel_type, which it checks itself.
      if (!isPlainObject(v)) return;
      const body: Record<string, unknown> = v;
      const type = body.tunnel_type;
      if (type !== "wireguard" && type !== "proxy") return;
      addIssues(ctx, foreignFieldIssues(type, body));
      // `regenerate_wg_client_key` is PUT-only; the strict object already reports it as unknown.
      for (const f of REQUIRED_ON_CREATE[type]) {
        if (body[f] === undefined) addIssues(ctx, [{ path: [f], message: "is required" }]);
      }
    },
    { when: () => true },
  );
export type CreateEgressInput = z.output<typeof createEgressInput>;

/**
 * `PUT /v1/admin/egress-ips/{ipID}`: every field optional; secrets may be `"***"` (keep). The
 * tunnel type and `proxy_config` are judged by the service, which knows the stored egress:
 * proxy_config is merged with the stored secrets first and then validated as on create.
 */
export const updateEgressInput = z
  .strictObject({
    label: labelField.optional(),
    ip_address: ipAddressField.optional(),
    tunnel_type: z.enum(tunnelTypes).optional(),
    provider: providerField.optional(),
    status: z.enum(egressStatuses).optional(),
    wg_endpoint: wgEndpointField.optional(),
    wg_public_key: wgKeyField.optional(),
    wg_preshared_key: wgKeyOrMaskField.nullish(),
    wg_allowed_ips: wgAllowedIpsField.optional(),
    wg_dns_server: ipv4Field.optional(),
    wg_peer_address: wgPeerAddressField.optional(),
    wg_private_key: wgKeyOrMaskField.optional(),
    regenerate_wg_client_key: z.boolean().optional(),
    // Shape only: merged with the stored secrets, then validated by checkProxyConfig (service).
    proxy_config: z.unknown().refine(isPlainObject, { message: "must be an object" }).optional(),
    proxy_dns_server: ipv4Field.nullish(),
  })
  .superRefine((v, ctx) => {
    if (v.regenerate_wg_client_key === true && v.wg_private_key !== undefined && v.wg_private_key !== MASK) {
      addIssues(ctx, [{ path: ["wg_private_key"], message: "must not be given with regenerate_wg_client_key" }]);
    }
  });
export type UpdateEgressInput = z.output<typeof updateEgressInput>;

const boolQuery = z.enum(["true", "false"]);

export const listEgressQuery = z.object({
  ...paginationShape,
  status: z.enum(egressStatuses).optional(),
  tunnel_type: z.enum(tunnelTypes).optional(),
  health: z.enum(egressHealths).optional(),
  bound: boolQuery.optional(),
});
export type ListEgressQuery = z.output<typeof listEgressQuery>;
