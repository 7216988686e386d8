import { lookup } from "node:dns/promises";
import { BlockList, isIP } from "node:net";
import { parseAddressLiteral } from "./forward-address.js";

/**
 * Which `direct-tcpip` destinations (`ssh -L`) are refused (docs/architecture.md#ssh-proxy): cloud metadata,
 * the control plane's own addresses (the management and underlay bridges: the Docker host, where
 * api, sshd, Postgres and Redis run), Docker API ports, and the operator's extra entries.
 * Everything else is opened by the host's own sshd, inside its namespace and kill switch.
 */
export interface ForwardPolicy {
  allowed(dest: { host: string; port: number }, controlPlane: string[]): boolean;
  /**
   * Parse the destination in every form the host's getaddrinfo would accept, resolve names with
   * the proxy's resolver, check every resulting address, and name the one address the host must
   * dial (numeric, so the host cannot resolve or parse it differently from what was checked).
   */
  decide(dest: { host: string; port: number }, controlPlane: string[]): Promise<ForwardDecision>;
}

export type ForwardDecision =
  | { ok: true; address: string }
  | { ok: false; reason: "blocked_address" | "blocked_port" | "unresolvable" | "bind_address"; address: string | null };

export type ResolveName = (name: string) => Promise<string[]>;

const resolveWithProxyDns: ResolveName = async (name) =>
  (await lookup(name, { all: true, verbatim: true })).map((a) => a.address);

export function createForwardPolicy(extra: string, resolveName: ResolveName = resolveWithProxyDns): ForwardPolicy {
  const blocked = new BlockList();
  blocked.addSubnet("169.254.0.0", 16, "ipv4");
  blocked.addSubnet("fe80::", 10, "ipv6");
  const blockedPorts = new Set<string>(); // "addr:port"
  for (const raw of extra.split(",").map((s) => s.trim()).filter(Boolean)) {
    const hostPort = /^(\[?[0-9a-fA-F:.]+\]?):(\d{1,5})$/.exec(raw);
    if (hostPort && !raw.includes("/")) {
      const a = hostPort[1]!.replace(/^\[|\]$/g, "");
      blockedPorts.add(`${parseAddressLiteral(a) ?? a.toLowerCase()}:${Number(hostPort[2])}`);
      continue;
    }
    const [addr, prefix] = raw.split("/");
    const family = isIP(addr ?? "");
    if (!family) continue;
    blocked.addSubnet(addr!, prefix ? Number(prefix) : family === 4 ? 32 : 128, family === 4 ? "ipv4" : "ipv6");
  }
  const policy: ForwardPolicy = {
    async decide({ host, port }, controlPlane) {
      if (port === 2375 || port === 2376) return { ok: false, reason: "blocked_port", address: null };
      const literal = parseAddressLiteral(host);
      let addresses: string[];
      if (literal) addresses = [literal];
      else {
        const name = host.trim().toLowerCase().replace(/\.$/, "");
        // Only plain DNS names are resolved; anything else (odd bytes, empty) is refused.
        if (!/^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$/.test(name)) {
          return { ok: false, reason: "unresolvable", address: null };
        }
        try {
          addresses = (await resolveName(name)).map((a) => parseAddressLiteral(a) ?? a);
        } catch {
          addresses = [];
        }
        if (addresses.length === 0) return { ok: false, reason: "unresolvable", address: null };
      }
      const cp = controlPlane.map((c) => parseAddressLiteral(c) ?? c.toLowerCase());
      for (const address of addresses) {
        if (!policy.allowed({ host: address, port }, cp)) {
          return { ok: false, reason: blockedPorts.has(`${address}:${port}`) ? "blocked_port" : "blocked_address", address };
        }
      }
      return { ok: true, address: addresses[0]! };
    },
    allowed({ host, port }, controlPlane) {
      const h = host.toLowerCase().replace(/\.$/, "");
      if (port === 2375 || port === 2376) return false;
      if (h === "metadata.google.internal" || h === "metadata") return false;
      if (blockedPorts.has(`${h}:${port}`)) return false;
      if (controlPlane.includes(h)) return false;
      const family = isIP(h);
      if (family && blocked.check(h, family === 4 ? "ipv4" : "ipv6")) return false;
      return true;
    },
  };
  return policy;
}
