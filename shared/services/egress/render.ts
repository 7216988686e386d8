import type { BindingRow, EgressIpRow } from "../../db/schema/index.js";

export const MASK = "***";

/** Keys masked anywhere inside proxy_config (behaviour.md §1.6). */
export const SECRET_KEY_PATTERN = /password|secret|private_key|psk|token/i;
const isSecretKey = (k: string) => k === "uuid" || SECRET_KEY_PATTERN.test(k);

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

/** The egress IP object of behaviour.md §5.1 — secrets masked, never decrypted here. */
export function renderEgress(e: EgressIpRow, binding: Pick<BindingRow, "id" | "hostId"> | null) {
  const common = {
    id: e.id,
    label: e.label,
    ip_address: e.ipAddress,
    tunnel_type: e.tunnelType,
    provider: e.provider,
    status: e.status,
    health: e.health,
    last_test: e.lastTest ?? null,
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
      wg_endpoint: e.wgEndpoint,
      wg_public_key: e.wgPublicKey,
      wg_preshared_key: e.wgPresharedKeyEnc ? MASK : null,
      wg_allowed_ips: e.wgAllowedIps,
      wg_dns_server: e.wgDnsServer,
      wg_peer_address: e.wgPeerAddress,
      wg_private_key: e.wgPrivateKeyEnc ? MASK : null,
      wg_client_public_key: e.wgClientPublicKey,
      ...tail,
    };
  }
  const cfg = (e.proxyConfig ?? {}) as { network?: string; type?: string };
  const tcpOnly = cfg.type === "http" || cfg.network === "tcp";
  return {
    ...common,
    proxy_config: maskProxyConfig(e.proxyConfig),
    proxy_dns_server: e.proxyDnsServer,
    udp: tcpOnly ? "blocked" : "proxied",
    ...tail,
  };
}
