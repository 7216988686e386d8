import { BlockList, isIP } from "node:net";

/**
 * Which `direct-tcpip` destinations (`ssh -L`) are refused (behaviour.md §7.4): cloud metadata,
 * the control plane's own addresses (the management and underlay bridges: the Docker host, where
 * api, sshd, Postgres and Redis run), Docker API ports, and the operator's extra entries.
 * Everything else is opened by the host's own sshd, inside its namespace and kill switch.
 */
export interface ForwardPolicy {
  allowed(dest: { host: string; port: number }, controlPlane: string[]): boolean;
}

export function createForwardPolicy(extra: string): ForwardPolicy {
  const blocked = new BlockList();
  blocked.addSubnet("169.254.0.0", 16, "ipv4");
  blocked.addSubnet("fe80::", 10, "ipv6");
  const blockedPorts = new Set<string>(); // "addr:port"
  for (const raw of extra.split(",").map((s) => s.trim()).filter(Boolean)) {
    const hostPort = /^(\[?[0-9a-fA-F:.]+\]?):(\d{1,5})$/.exec(raw);
    if (hostPort && !raw.includes("/")) {
      blockedPorts.add(`${hostPort[1]!.replace(/^\[|\]$/g, "")}:${hostPort[2]}`);
      continue;
    }
    const [addr, prefix] = raw.split("/");
    const family = isIP(addr ?? "");
    if (!family) continue;
    blocked.addSubnet(addr!, prefix ? Number(prefix) : family === 4 ? 32 : 128, family === 4 ? "ipv4" : "ipv6");
  }
  return {
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
}
