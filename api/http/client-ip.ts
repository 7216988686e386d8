import { BlockList, isIP } from "node:net";
import type { Context } from "hono";

export interface TrustedCidr {
  address: string;
  prefix: number;
  family: 4 | 6;
}

const unmap = (ip: string) => (ip.startsWith("::ffff:") && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip);

/**
 * The client address (docs/api.md#routing): the TCP peer, unless the peer is a trusted proxy, in
 * which case the right-most X-Forwarded-For entry that is not itself trusted.
 */
export function createClientIpResolver(trusted: TrustedCidr[]) {
  const list = new BlockList();
  for (const t of trusted) list.addSubnet(t.address, t.prefix, t.family === 4 ? "ipv4" : "ipv6");
  const isTrusted = (ip: string) => {
    const family = isIP(ip);
    return family !== 0 && list.check(ip, family === 4 ? "ipv4" : "ipv6");
  };
  return (c: Context): string => {
    const incoming = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming;
    const peer = unmap(incoming?.socket?.remoteAddress ?? "unknown");
    if (trusted.length === 0 || !isTrusted(peer)) return peer;
    const xff = c.req.header("x-forwarded-for");
    if (!xff) return peer;
    const hops = xff
      .split(",")
      .map((s) => unmap(s.trim()))
      .filter((s) => isIP(s) !== 0);
    for (let i = hops.length - 1; i >= 0; i--) if (!isTrusted(hops[i]!)) return hops[i]!;
    return hops[0] ?? peer;
  };
}
