import { z } from "zod";
import type { HostRow, UserRow } from "../../db/schema/index.js";

/** Where an effective idle setting came from (docs/idle.md#policy). */
export type IdlePolicySource = "host" | "user" | "global";

export interface IdlePolicy {
  /** Minutes idle before an automatic stop; 0 = never. */
  stopMinutes: number;
  /** CPU, in percent of the host's CPU limit, under which the host counts as idle. */
  cpuPercent: number;
  alwaysOn: boolean;
  source: { stopMinutes: IdlePolicySource; cpuPercent: IdlePolicySource };
}

/**
 * The idle policy that applies to a host (docs/idle.md#policy): each setting is the host's own,
 * else its owner's, else the global IDLE_STOP_MINUTES / IDLE_CPU_PERCENT. `always_on` wins over
 * every setting: such a host is never stopped for idleness.
 */
export function effectiveIdlePolicy(
  host: Pick<HostRow, "idleStopMinutes" | "idleCpuPercent" | "alwaysOn">,
  owner: Pick<UserRow, "idleStopMinutes" | "idleCpuPercent">,
  global: { stopMinutes: number; cpuPercent: number },
): IdlePolicy {
  const pick = (h: number | null, u: number | null, g: number): [number, IdlePolicySource] =>
    h !== null ? [h, "host"] : u !== null ? [u, "user"] : [g, "global"];
  const [stopMinutes, minutesFrom] = pick(host.idleStopMinutes, owner.idleStopMinutes, global.stopMinutes);
  const [cpuPercent, cpuFrom] = pick(host.idleCpuPercent, owner.idleCpuPercent, global.cpuPercent);
  return {
    stopMinutes: host.alwaysOn ? 0 : stopMinutes,
    cpuPercent,
    alwaysOn: host.alwaysOn,
    source: { stopMinutes: minutesFrom, cpuPercent: cpuFrom },
  };
}

/**
 * Established TCP connections to the host's sshd (22) or desktop (6901) from anywhere but
 * loopback, in the text of /proc/net/tcp and /proc/net/tcp6 of the host's network namespace
 * (docs/idle.md#scan). Only the SSH proxy and the VNC proxy can open such a connection (the
 * gateway's ruleset accepts inbound connections from the management source only), so each one is
 * a session; a tenant's own `ssh localhost` inside the host is loopback and does not count.
 * Returns null when the text is not a socket table at all.
 */
export function countSessionConnections(procNetTcp: string): number | null {
  if (!procNetTcp.includes("local_address")) return null;
  let n = 0;
  for (const line of procNetTcp.split("\n")) {
    const f = line.trim().split(/\s+/);
    // sl local rem st …: "0: 0200000A:0016 0100000A:D2F4 01 …"
    if (f.length < 4 || !/^\d+:$/.test(f[0]!)) continue;
    const [, local, remote, state] = f as [string, string, string, string];
    if (state !== "01") continue; // TCP_ESTABLISHED
    const port = parseInt(local.split(":")[1] ?? "", 16);
    if (port !== 22 && port !== 6901) continue;
    if (isLoopback(remote.split(":")[0] ?? "")) continue;
    n++;
  }
  return n;
}

/** A /proc/net/tcp(6) address (hex, 32-bit words in host byte order: little-endian here) on loopback. */
function isLoopback(hex: string): boolean {
  if (hex.length === 8) return hex.slice(6, 8) === "7F"; // 127.0.0.0/8, first octet in the last byte
  if (hex.length === 32) {
    if (hex === "00000000000000000000000001000000") return true; // ::1
    // ::ffff:127.x.y.z
    return hex.slice(0, 16) === "0000000000000000" && hex.slice(16, 24) === "FFFF0000" && hex.slice(30, 32) === "7F";
  }
  return false;
}

/** Request fields of the idle policy (docs/api.md#idle): null inherits (host → owner → global). */
export const idleStopMinutesField = z.number().int().min(0).max(525_600).nullable();
export const idleCpuPercentField = z.number().int().min(0).max(100).nullable();
