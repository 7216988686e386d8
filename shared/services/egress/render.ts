import { desc, eq, type SQL } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.js";
import { type BindingRow, egressIps, type EgressIpRow, hostEgressBindings } from "../../db/schema/index.js";
import type { EgressIpView } from "../../views/index.js";

export const MASK = "***";

/** Keys masked anywhere inside proxy_config (docs/api.md#secrets). */
export const SECRET_KEY_PATTERN = /password|secret|private_key|psk|token/i;
export const isSecretKey = (k: string): boolean => k === "uuid" || SECRET_KEY_PATTERN.test(k);

/** Replace every secret value by "***" at any depth. Values are stored apart (encrypted). */
export function maskProxyConfig(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(maskProxyConfig);
  if (v && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, val] of Object.entries(v)) out[k] = isSecretKey(k) && val !== null ? MASK : maskProxyConfig(val);
    return out;
  }
  return v;
}

/** One secret value of a proxy_config and where it sits (`["password"]`, `["tls","psk"]`, `["list",0,"token"]`). */
export interface ProxySecret {
  path: (string | number)[];
  value: unknown;
}

/**
 * Split a plaintext proxy_config into the object stored in `proxy_config` (every secret value
 * replaced by "***", so the key stays visible and masked) and the secret values, which are stored
 * encrypted as one JSON document in `proxy_secrets_enc`.
 */
export function splitProxySecrets(config: Record<string, unknown>): { stored: Record<string, unknown>; secrets: ProxySecret[] } {
  const secrets: ProxySecret[] = [];
  const walk = (v: unknown, path: (string | number)[]): unknown => {
    if (Array.isArray(v)) return v.map((x, i) => walk(x, [...path, i]));
    if (v && typeof v === "object") {
      const out: Record<string, unknown> = {};
      for (const [k, val] of Object.entries(v)) {
        if (isSecretKey(k) && val !== null) {
          secrets.push({ path: [...path, k], value: val });
          out[k] = MASK;
        } else out[k] = walk(val, [...path, k]);
      }
      return out;
    }
    return v;
  };
  return { stored: walk(config, []) as Record<string, unknown>, secrets };
}

/** The inverse of splitProxySecrets: the full sing-box object (for the data plane only). */
export function joinProxySecrets(stored: Record<string, unknown>, secrets: ProxySecret[]): Record<string, unknown> {
  const full = structuredClone(stored);
  for (const s of secrets) setAt(full, s.path, s.value);
  return full;
}

/** Set a value at a path of plain objects/arrays; a path that no longer exists is skipped. */
export function setAt(root: unknown, path: (string | number)[], value: unknown): boolean {
  let cur = root as Record<string | number, unknown> | undefined;
  for (const seg of path.slice(0, -1)) {
    const next = cur?.[seg];
    if (!next || typeof next !== "object") return false;
    cur = next as Record<string | number, unknown>;
  }
  const last = path[path.length - 1];
  if (!cur || last === undefined || last === "__proto__") return false;
  Object.defineProperty(cur, last, { value, enumerable: true, writable: true, configurable: true });
  return true;
}

export function getAt(root: unknown, path: (string | number)[]): unknown {
  let cur = root as Record<string | number, unknown> | undefined;
  for (const seg of path) {
    if (!cur || typeof cur !== "object" || !Object.hasOwn(cur, seg)) return undefined;
    cur = cur[seg] as Record<string | number, unknown> | undefined;
  }
  return cur;
}

export interface EgressJoinRow {
  egress: EgressIpRow;
  binding: BindingRow | null;
}

/** Egress IPs with their binding, newest first (docs/api.md#pagination). */
export async function loadEgressRows(
  db: DbOrTx,
  where: SQL | undefined,
  page?: { limit: number; offset: number },
): Promise<EgressJoinRow[]> {
  const q = db
    .select({ egress: egressIps, binding: hostEgressBindings })
    .from(egressIps)
    .leftJoin(hostEgressBindings, eq(hostEgressBindings.egressIpId, egressIps.id))
    .where(where)
    .orderBy(desc(egressIps.createdAt), desc(egressIps.id));
  return page ? q.limit(page.limit).offset(page.offset) : q;
}

/** The egress IP object of docs/api.md#egress-ips — secrets masked, never decrypted here. */
export function renderEgress(e: EgressIpRow, binding: Pick<BindingRow, "id" | "hostId"> | null): EgressIpView {
  const common = {
    id: e.id,
    label: e.label,
    ip_address: e.ipAddress,
    tunnel_type: e.tunnelType,
    provider: e.provider,
    status: e.status,
    health: e.health,
    last_test: (e.lastTest ?? null) as EgressIpView["last_test"],
  };
  const tail = {
    bound_host_id: binding?.hostId ?? null,
    binding_id: binding?.id ?? null,
    created_at: e.createdAt.toISOString(),
    updated_at: e.updatedAt.toISOString(),
  };
  if (e.tunnelType === "wireguard") {
    return {
      ...common,
      tunnel_type: "wireguard",
      wg_endpoint: e.wgEndpoint,
      wg_public_key: e.wgPublicKey,
      wg_preshared_key: e.wgPresharedKeyEnc ? "***" : null,
      wg_allowed_ips: e.wgAllowedIps,
      wg_dns_server: e.wgDnsServer,
      wg_peer_address: e.wgPeerAddress,
      wg_private_key: e.wgPrivateKeyEnc ? "***" : null,
      wg_client_public_key: e.wgClientPublicKey,
      ...tail,
    };
  }
  const cfg = (e.proxyConfig ?? {}) as { network?: string; type?: string };
  const tcpOnly = cfg.type === "http" || cfg.network === "tcp";
  return {
    ...common,
    tunnel_type: "proxy",
    proxy_config: maskProxyConfig(e.proxyConfig) as Record<string, unknown> | null,
    proxy_dns_server: e.proxyDnsServer,
    udp: tcpOnly ? "blocked" : "proxied",
    ...tail,
  };
}
