import { networkInterfaces } from "node:os";
import type { WorkerDeps } from "../deps.js";
import type { NetworkInfo } from "../runtime/runtime.js";
import { intToIp, ipToInt, isIpv4, networkOf, parseCidr4 } from "./values.js";

/**
 * The machine that runs the engine, as destinations a host must never reach (issue 10 §4; a
 * ruleset chain beyond the ones docs/egress.md#kill-switch, docs/egress.md#modes list). Without this a host in direct mode reached every address of
 * the machine through Docker's NAT (the default bridge gateway, every other bridge, the machine's
 * own interface address: INPUT accepts, Docker's isolation rules only cover FORWARD), and a host in
 * WireGuard or proxy mode reached them through an egress server that runs on the same machine
 * (the lab's do; an operator's may).
 *
 * The gateway's ruleset drops host packets to this set in every mode that routes (docs/egress.md#modes "machine
 * guard"); the WireGuard endpoint or proxy server stays reachable for the engine's marked packets.
 */
export interface MachineGuard {
  /** The machine's IPv4 addresses (/32) and every Docker network's subnet but the underlay's, collapsed. */
  machine: string[];
  /**
   * The underlay's subnet: in direct mode the private ranges are dropped too, except this one
   * (on the lab it is the simulated internet; in production Docker keeps its ICC off).
   */
  underlayNet: string;
}

/** Address ranges that are never "the internet" seen from the machine: dropped in direct mode. */
export const PRIVATE_RANGES = ["10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16", "198.18.0.0/15"] as const;

/**
 * The machine's own IPv4 addresses. The worker runs on the machine of the engine it drives
 * (DOCKER_SOCKET is a local socket; compose runs it with `network_mode: host`), so its interfaces
 * are the machine's: every bridge gateway, the machine's LAN/public address. Loopback is left out:
 * 127.0.0.0/8 inside the gateway's namespace is the namespace's own.
 */
export function localAddresses(ifaces = networkInterfaces()): string[] {
  return Object.values(ifaces)
    .flatMap((list) => list ?? [])
    .filter((a) => a.family === "IPv4" && !a.internal && isIpv4(a.address) && !a.address.startsWith("127."))
    .map((a) => a.address);
}

/**
 * Removes the ranges contained in another one and normalises each to its network address, so the
 * anonymous interval set of the ruleset has no overlapping elements (nft refuses those).
 */
export function collapseCidrs(items: string[]): string[] {
  const parsed = items.map((c) => {
    const p = parseCidr4(c, "machine address", { bareIsHost: true });
    const size = 2 ** (32 - p.prefix);
    const start = p.prefix === 0 ? 0 : Math.floor(ipToInt(p.address) / size) * size;
    return { start, end: start + size - 1, prefix: p.prefix };
  });
  parsed.sort((a, b) => a.prefix - b.prefix || a.start - b.start);
  const kept: typeof parsed = [];
  for (const c of parsed) if (!kept.some((k) => k.start <= c.start && c.end <= k.end)) kept.push(c);
  return kept
    .sort((a, b) => a.start - b.start)
    .map((c) => (c.prefix === 32 ? intToIp(c.start) : `${intToIp(c.start)}/${c.prefix}`));
}

/** The guard of a gateway on this underlay, from the engine's networks and the machine's interfaces. */
export function machineGuardOf(underlay: NetworkInfo, networks: NetworkInfo[], addresses: string[]): MachineGuard {
  const underlayNet = networkOf(underlay.subnet, "underlay network");
  // A subnet shorter than /8 is no bridge of a machine (and would swallow the internet): ignored.
  const subnets = networks
    .map((n) => n.subnet)
    .filter((s) => /\/([89]|[12]\d|3[0-2])$/.test(s) && isIpv4(s.split("/")[0]))
    .map((s) => networkOf(s, "network"))
    .filter((s) => s !== underlayNet);
  const gateways = [...networks.map((n) => n.gateway), underlay.gateway].filter(isIpv4);
  return { machine: collapseCidrs([...addresses, ...gateways, ...subnets]), underlayNet };
}

/** Read at every start, apply and egress test: a network created since is in the next ruleset. */
export async function machineGuard(deps: Pick<WorkerDeps, "runtime">, underlay: NetworkInfo): Promise<MachineGuard> {
  return machineGuardOf(underlay, await deps.runtime.listNetworks(), localAddresses());
}
