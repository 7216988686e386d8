import type { Redis } from "ioredis";
import { redisKey } from "../redis.js";

/** A worker's liveness record (docs/architecture.md#schedulers): written every few seconds with a short TTL. */
export interface Heartbeat {
  worker_id: string;
  engine_id: string;
  docker_ok: boolean;
  /**
   * The worker has its egress check endpoints (EGRESS_CHECK_URL and the rest). Absent in the
   * records of workers older than the field, which could not start without them: absent = true.
   */
  egress_checks?: boolean;
  /**
   * The WireGuard implementation this worker's gateways use (worker/network/wireguard-impl.ts,
   * docs/egress.md#wireguard-implementation). Absent in records of older workers: "unknown".
   */
  wireguard?: "kernel" | "userspace" | "unknown";
  at: string;
}

/**
 * Heartbeats live in one hash (`<prefix>:heartbeats`, worker id → record) indexed by one sorted set
 * (`<prefix>:heartbeats:at`, worker id → time of the beat in ms), so /healthz reads them with one
 * bounded command whatever else Redis holds (issue 10 §2). They used to be one key per worker found
 * with SCAN, which walks the whole keyspace: every tenant's sessions, tickets and counters, on
 * every unauthenticated health probe.
 *
 * Each write prunes records older than the TTL (a worker that died without removing its own), and
 * both keys expire with the TTL, so they vanish when every worker has stopped.
 */
const hashKey = (prefix: string) => redisKey(prefix, "heartbeats");
const indexKey = (prefix: string) => redisKey(prefix, "heartbeats", "at");

/** At most this many of the newest heartbeats are read per health check (workers beyond: not needed to say "alive"). */
export const MAX_HEARTBEATS_READ = 32;

// KEYS: hash, index. ARGV: worker id, record, beat time (ms), prune before (ms), key TTL (ms).
const PUBLISH = `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4], 'LIMIT', 0, 100)
if #stale > 0 then
  redis.call('HDEL', KEYS[1], unpack(stale))
  redis.call('ZREM', KEYS[2], unpack(stale))
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return #stale
`;

// KEYS: hash, index. ARGV: oldest beat time accepted (ms), how many. The newest first.
const READ = `
local ids = redis.call('ZREVRANGEBYSCORE', KEYS[2], '+inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids == 0 then return {} end
return redis.call('HMGET', KEYS[1], unpack(ids))
`;

export async function publishHeartbeat(redis: Redis, prefix: string, hb: Heartbeat, ttlSeconds = 15): Promise<void> {
  const at = Date.parse(hb.at);
  const beatMs = Number.isFinite(at) ? at : Date.now();
  await redis.eval(
    PUBLISH,
    2,
    hashKey(prefix),
    indexKey(prefix),
    hb.worker_id,
    JSON.stringify(hb),
    String(beatMs),
    String(Date.now() - ttlSeconds * 1000),
    String(ttlSeconds * 1000),
  );
}

export async function removeHeartbeat(redis: Redis, prefix: string, workerId: string): Promise<void> {
  await redis.multi().hdel(hashKey(prefix), workerId).zrem(indexKey(prefix), workerId).exec();
}

/**
 * The newest heartbeats no older than `freshnessSeconds` (at most MAX_HEARTBEATS_READ): one Redis
 * command, whatever the number of workers or other keys.
 */
export async function readHeartbeats(redis: Redis, prefix: string, freshnessSeconds: number, now: Date): Promise<Heartbeat[]> {
  const values = (await redis.eval(
    READ,
    2,
    hashKey(prefix),
    indexKey(prefix),
    String(now.getTime() - freshnessSeconds * 1000),
    String(MAX_HEARTBEATS_READ),
  )) as (string | null)[];
  const out: Heartbeat[] = [];
  for (const v of values) {
    if (!v) continue;
    try {
      out.push(JSON.parse(v) as Heartbeat);
    } catch {
      // A malformed record is simply not a heartbeat.
    }
  }
  return out;
}

/**
 * Whether egress checks can run (README "Deploying the egress check service (checkd)"): false only
 * when fresh heartbeats exist and none of them has the check endpoints. With no fresh worker at all
 * the answer is "unknown" (null): a task then waits for a worker, which refuses it itself if it
 * lacks the checks (egress_checks_not_configured), so nothing is ever taken as verified.
 */
export async function egressChecksAvailable(redis: Redis, prefix: string, freshnessSeconds: number, now: Date): Promise<boolean | null> {
  const beats = await readHeartbeats(redis, prefix, freshnessSeconds, now);
  if (beats.length === 0) return null;
  return beats.some((b) => b.egress_checks !== false);
}

/** The WireGuard implementation /healthz shows: the newest fresh heartbeat's (beats come newest first). */
export function wireguardOf(beats: Heartbeat[], now: Date, freshnessSeconds: number): "kernel" | "userspace" | "unknown" {
  const fresh = beats.filter((b) => now.getTime() - Date.parse(b.at) <= freshnessSeconds * 1000);
  return fresh.find((b) => b.wireguard)?.wireguard ?? "unknown";
}

export type AgentState = "ok" | "docker_unreachable" | "no_workers";

/** `ok` when a fresh heartbeat reached Docker; `docker_unreachable` when fresh ones did not (docs/operations.md#health). */
export function agentState(beats: Heartbeat[], now: Date, freshnessSeconds: number): AgentState {
  const fresh = beats.filter((b) => now.getTime() - Date.parse(b.at) <= freshnessSeconds * 1000);
  if (fresh.length === 0) return "no_workers";
  return fresh.some((b) => b.docker_ok) ? "ok" : "docker_unreachable";
}
