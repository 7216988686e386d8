import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import { BackendUnavailableError } from "../../shared/infra-errors.js";
import type { Logger } from "../../shared/logger.js";
import { redisKey } from "../../shared/redis.js";

/**
 * Per-user caps on long-lived connections (issue 10 §2): live-update streams and desktop
 * WebSockets. Every tenant is hostile, and each open stream holds a socket, timers and (for a
 * desktop) a second socket to the host: without a cap one user holds them by the thousand.
 *
 * Counted in Redis, not in the process, so the cap holds across api replicas: one sorted set per
 * (kind, user), `<prefix>:conns:<kind>:<userId>`, one member per open connection whose score is
 * when that member expires. The open connection refreshes its member every TTL/3; closing removes
 * it. A crashed or killed api never removes its members, so they expire after SLOT_TTL_MS and the
 * user gets the slots back — a cap that a crash could fill for ever would be a denial of service.
 * Expired members are pruned by the next acquire, atomically with the count (one Lua script), so a
 * burst of concurrent opens cannot overshoot the cap.
 */

export type SlotKind = "sse" | "vnc";

/** How long a slot lives without a refresh (a crashed api's slots come back after this). */
export const SLOT_TTL_MS = 60_000;

export interface ConnectionSlot {
  /** Give the slot back (idempotent, best effort: an unreachable Redis lets it expire). */
  release(): void;
}

// KEYS[1]: the set; ARGV: limit, ttl ms, member. Redis's own clock, so replicas never disagree.
// Returns 1 when the member was added, 0 at the cap.
const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`;

// Refresh only a member still present (XX): one that expired while its api stalled has been
// counted as free and may have been handed to another connection; re-adding it would overshoot.
const REFRESH = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[1]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return n
`;

export const slotKey = (prefix: string, kind: SlotKind, userId: string) => redisKey(prefix, "conns", kind, userId);

/**
 * Take one of `limit` slots of `kind` for `userId`, or null when all are taken. Throws
 * BackendUnavailableError when Redis does not answer (the caller answers 503: a cap that cannot
 * be checked is not skipped).
 */
export async function acquireConnectionSlot(
  redis: Redis,
  opts: { prefix: string; kind: SlotKind; userId: string; limit: number; logger: Logger; ttlMs?: number },
): Promise<ConnectionSlot | null> {
  const key = slotKey(opts.prefix, opts.kind, opts.userId);
  const member = randomBytes(12).toString("base64url");
  const ttl = opts.ttlMs ?? SLOT_TTL_MS;
  let added: unknown;
  try {
    added = await redis.eval(ACQUIRE, 1, key, String(opts.limit), String(ttl), member);
  } catch (err) {
    throw new BackendUnavailableError("redis", err);
  }
  if (added !== 1) return null;
  const timer = setInterval(() => {
    void redis.eval(REFRESH, 1, key, String(ttl), member).catch((err: unknown) => {
      opts.logger.warn({ err: (err as Error).message, kind: opts.kind }, "connection slot refresh failed");
    });
  }, Math.max(1000, Math.floor(ttl / 3)));
  timer.unref();
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      void redis.zrem(key, member).catch((err: unknown) => {
        // It expires on its own after the TTL.
        opts.logger.warn({ err: (err as Error).message, kind: opts.kind }, "connection slot release failed");
      });
    },
  };
}

/** How often a refusal is logged at most per kind and process; the others are counted into the next line. */
const REFUSAL_LOG_INTERVAL_MS = 10_000;
const lastRefusalLog = new Map<SlotKind, { at: number; suppressed: number }>();

/**
 * Log a refused connection at warn, at most once per REFUSAL_LOG_INTERVAL_MS per kind: a tenant
 * reconnecting in a loop must not flood the log (each request is in the access log anyway).
 */
export function logSlotRefusal(logger: Logger, kind: SlotKind, fields: Record<string, unknown>): void {
  const now = Date.now();
  const last = lastRefusalLog.get(kind);
  if (last && now - last.at < REFUSAL_LOG_INTERVAL_MS) {
    last.suppressed++;
    return;
  }
  lastRefusalLog.set(kind, { at: now, suppressed: 0 });
  logger.warn({ ...fields, kind, suppressed: last?.suppressed ?? 0 }, "connection refused: too many open for this user");
}
