import { isIPv6, type Socket } from "node:net";
import type { Logger } from "../shared/logger.js";

/**
 * Admission of TCP connections before authentication (issue 10 §2), like OpenSSH's MaxStartups
 * and LoginGraceTime. Every tenant — and anyone on the internet — can open connections to the SSH
 * proxy and never authenticate: each one holds a socket, an ssh2 protocol state and (after the
 * key exchange) crypto state. So:
 *
 * - at most `maxPerIp` unauthenticated connections per client address (an IPv6 /64 counts as one)
 *   and `maxTotal` in all;
 *   beyond either the socket is closed at once, before the banner or any key exchange;
 * - a connection not authenticated within the grace period is closed, counted from the TCP accept.
 *   ssh2 only reports a connection once the client sent its identification line, so a client that
 *   sends nothing at all was never timed out before this gate existed;
 * - authenticating (or closing) frees the slot.
 *
 * Counted per process: the slots protect this process's sockets and memory (as MaxStartups
 * protects one sshd), so replicas each hold their own.
 */

export interface PendingConnection {
  readonly ip: string;
  /** The connection authenticated: its slot is free, the grace timer stops. */
  authenticated(): void;
  /** Set by the SSH layer once it knows the connection: used to say why at the grace deadline. */
  onGraceExpired: (() => void) | null;
}

export type DenyReason = "per_ip" | "total";

/**
 * What "one address" means for the per-address cap: an IPv4 address, or an IPv6 /64 — one
 * customer usually holds a whole /64, and counting each of its 2^64 addresses apart would make the
 * per-address cap no cap at all.
 */
export function addressBucket(ip: string): string {
  if (!isIPv6(ip)) return ip;
  const [head = "", tail] = ip.split("::");
  const left = head ? head.split(":") : [];
  const right = tail === undefined ? [] : tail ? tail.split(":") : [];
  // An embedded IPv4 tail (::ffff:a.b.c.d and the like) is two groups, all in the low 64 bits.
  const groups = (g: string[]) => g.reduce((n, x) => n + (x.includes(".") ? 2 : 1), 0);
  const full = tail === undefined ? left : [...left, ...Array<string>(8 - groups(left) - groups(right)).fill("0"), ...right];
  return `${full
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(":")}::/64`;
}

/** How often a denial is logged at most (per reason); the others are counted into the next line. */
const DENY_LOG_INTERVAL_MS = 10_000;

export class UnauthGate {
  private readonly perIp = new Map<string, number>();
  private total = 0;
  /** By `ip:port`, so the SSH layer can find the record of the socket it was handed. */
  private readonly pending = new Map<string, PendingConnection>();
  private readonly lastLog = new Map<DenyReason, { at: number; suppressed: number }>();

  constructor(
    private readonly opts: {
      maxPerIp: number;
      maxTotal: number;
      graceMs: number;
      logger: Logger;
      /** Called for a denial that is logged (at most one per reason and interval), e.g. to record an event. */
      onDenied?: (info: { ip: string; reason: DenyReason; suppressed: number }) => void;
    },
  ) {}

  /** Unauthenticated connections now (tests and metrics). */
  counts(): { total: number; perIp: Record<string, number> } {
    return { total: this.total, perIp: Object.fromEntries(this.perIp) };
  }

  /**
   * Admit a freshly accepted socket or close it. Returns false when it was refused (already
   * destroyed). `ip` is the normalised client address.
   */
  admit(socket: Socket, ip: string): boolean {
    const bucket = addressBucket(ip);
    const mine = this.perIp.get(bucket) ?? 0;
    const reason: DenyReason | null = mine >= this.opts.maxPerIp ? "per_ip" : this.total >= this.opts.maxTotal ? "total" : null;
    if (reason) {
      // No banner, no key exchange: the cheapest refusal there is (OpenSSH drops the same way).
      socket.destroy();
      this.denied(ip, reason);
      return false;
    }
    this.perIp.set(bucket, mine + 1);
    this.total++;
    const key = `${ip}:${socket.remotePort}`;
    let freed = false;
    const free = () => {
      if (freed) return;
      freed = true;
      clearTimeout(grace);
      this.pending.delete(key);
      this.total--;
      const n = (this.perIp.get(bucket) ?? 1) - 1;
      if (n <= 0) this.perIp.delete(bucket);
      else this.perIp.set(bucket, n);
    };
    const record: PendingConnection = { ip, authenticated: free, onGraceExpired: null };
    const grace = setTimeout(() => {
      if (freed) return;
      // The SSH layer says why (a DISCONNECT the client prints) and closes; without it (the client
      // never sent its identification) the socket just closes.
      const say = record.onGraceExpired;
      free();
      if (say) say();
      else socket.destroy();
    }, this.opts.graceMs);
    grace.unref();
    this.pending.set(key, record);
    socket.once("close", free);
    return true;
  }

  /** The record of a connection the SSH layer was handed (by the peer's address and port). */
  lookup(ip: string, port: number | undefined): PendingConnection | undefined {
    return this.pending.get(`${ip}:${port}`);
  }

  private denied(ip: string, reason: DenyReason): void {
    const now = Date.now();
    const last = this.lastLog.get(reason);
    if (last && now - last.at < DENY_LOG_INTERVAL_MS) {
      last.suppressed++;
      return;
    }
    const suppressed = last?.suppressed ?? 0;
    this.lastLog.set(reason, { at: now, suppressed: 0 });
    const limit = reason === "per_ip" ? this.opts.maxPerIp : this.opts.maxTotal;
    this.opts.logger.warn(
      { ip, reason, limit, unauthenticated: this.total, suppressed },
      "ssh connection refused: too many unauthenticated connections",
    );
    this.opts.onDenied?.({ ip, reason, suppressed });
  }
}
