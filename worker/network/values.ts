import { isIP } from "node:net";

/**
 * The only kinds of value the gateway renderers interpolate into nftables rulesets, shell-parsed
 * env files and WireGuard configs (docs/egress.md#gateway): IPv4 literals, IPv4 CIDRs, ports, base64
 * keys and enumerated words. Each helper returns the value in canonical form or throws a
 * `NetworkValueError`, so a value that reached a renderer can never carry a quote, a newline or an
 * nft token of its own.
 */
export class NetworkValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NetworkValueError";
  }
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export const isIpv4 = (v: unknown): v is string => typeof v === "string" && IPV4.test(v);

export function ipv4(v: unknown, what: string): string {
  if (!isIpv4(v)) throw new NetworkValueError(`${what} is not an IPv4 address`);
  return v;
}

export interface Cidr4 {
  address: string;
  prefix: number;
}

export function parseCidr4(v: unknown, what: string, opts: { minPrefix?: number; bareIsHost?: boolean } = {}): Cidr4 {
  if (typeof v !== "string") throw new NetworkValueError(`${what} is not an IPv4 CIDR`);
  const [addr, prefixText, extra] = v.trim().split("/");
  if (extra !== undefined || !isIpv4(addr)) throw new NetworkValueError(`${what} is not an IPv4 CIDR`);
  if (prefixText === undefined) {
    if (!opts.bareIsHost) throw new NetworkValueError(`${what} is not an IPv4 CIDR`);
    return { address: addr, prefix: 32 };
  }
  if (!/^(3[0-2]|[12]?\d)$/.test(prefixText)) throw new NetworkValueError(`${what} is not an IPv4 CIDR`);
  const prefix = Number(prefixText);
  if (prefix < (opts.minPrefix ?? 0)) throw new NetworkValueError(`${what} has a prefix shorter than /${opts.minPrefix}`);
  return { address: addr, prefix };
}

export function cidr4(v: unknown, what: string, opts: { minPrefix?: number; bareIsHost?: boolean } = {}): string {
  const c = parseCidr4(v, what, opts);
  return `${c.address}/${c.prefix}`;
}

/** The network a CIDR names, as `a.b.c.d/n` with the host bits cleared (nft rejects host bits). */
export function networkOf(v: unknown, what: string): string {
  const c = parseCidr4(v, what);
  const n = ipToInt(c.address) & prefixMask(c.prefix);
  return `${intToIp(n)}/${c.prefix}`;
}

export function port(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > 65535) {
    throw new NetworkValueError(`${what} is not a port (1..65535)`);
  }
  return v;
}

/** `wg genkey` format: base64 of exactly 32 bytes. */
const WG_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

export function wgKey(v: unknown, what: string): string {
  if (typeof v !== "string" || !WG_KEY.test(v)) throw new NetworkValueError(`${what} is not a WireGuard key`);
  return v;
}

export function intIn(v: unknown, what: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new NetworkValueError(`${what} must be an integer in ${min}..${max}`);
  }
  return v;
}

export function oneOf<T extends string>(v: unknown, what: string, words: readonly T[]): T {
  if (typeof v !== "string" || !(words as readonly string[]).includes(v)) {
    throw new NetworkValueError(`${what} must be one of ${words.join(", ")}`);
  }
  return v as T;
}

/** RFC 1123 host name (as accepted for `wg_endpoint` and proxy `server`, docs/api.md#egress-validation). */
const DNS_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;
export const isDnsName = (v: unknown): v is string => typeof v === "string" && DNS_NAME.test(v) && !isIpv4(v);

/** `host:port` of a WireGuard endpoint: an IPv4 literal or a DNS name. */
export function parseHostPort(v: unknown, what: string): { host: string; port: number } {
  if (typeof v !== "string") throw new NetworkValueError(`${what} is not host:port`);
  const m = /^([^:\s]+):(\d{1,5})$/.exec(v.trim());
  if (!m || !(isIpv4(m[1]) || isDnsName(m[1]))) throw new NetworkValueError(`${what} is not host:port`);
  return { host: m[1]!, port: port(Number(m[2]), `${what} port`) };
}

// --- address arithmetic --------------------------------------------------------------------------

export const ipToInt = (ip: string): number => ip.split(".").reduce((acc, p) => (acc * 256 + Number(p)) >>> 0, 0);
export const intToIp = (n: number): string => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join(".");
const prefixMask = (prefix: number): number => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);

/** Whether an IPv4 address lies in any of the CIDRs (IPv6 entries never match an IPv4 address). */
export function inAnyCidr(ip: string, cidrs: readonly { address: string; prefix: number; family?: 4 | 6 }[]): boolean {
  if (!isIpv4(ip)) return false;
  const n = ipToInt(ip);
  return cidrs.some((c) => {
    if (c.family === 6 || !isIpv4(c.address)) return false;
    const m = prefixMask(c.prefix);
    return ((n & m) >>> 0) === ((ipToInt(c.address) & m) >>> 0);
  });
}

/**
 * Canonical text of an IP literal for comparisons (docs/api.md#egress-validation, docs/egress.md#verification): IPv4 as dotted quad without
 * leading zeros, IPv4-mapped IPv6 as IPv4, other IPv6 per RFC 5952 (lowercase, longest zero run
 * compressed). Returns null for anything that is not an IP literal.
 */
export function canonicalIp(raw: string): string | null {
  const v = raw.trim().replace(/^\[|\]$/g, "");
  const family = isIP(v);
  if (family === 4) return v.split(".").map((p) => String(Number(p))).join(".");
  if (family !== 6) return null;
  let text = v.toLowerCase();
  // A trailing dotted quad (::ffff:1.2.3.4) becomes two hex groups first.
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (quad) {
    const n = ipToInt(quad[1]!);
    text = text.slice(0, -quad[1]!.length) + `${((n >>> 16) & 0xffff).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const [head, tail] = text.includes("::") ? text.split("::") : [text, undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  const nums = groups.map((g) => parseInt(g, 16));
  if (nums.length !== 8 || nums.some((n) => Number.isNaN(n))) return null;
  if (nums.slice(0, 5).every((n) => n === 0) && nums[5] === 0xffff) {
    return intToIp((((nums[6]! << 16) >>> 0) + nums[7]!) >>> 0);
  }
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on a tie.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (nums[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && nums[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = nums.map((n) => n.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}
