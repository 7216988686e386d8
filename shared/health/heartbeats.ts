import type { Redis } from "ioredis";
import { redisKey } from "../redis.js";

/** A worker's liveness record (behaviour.md §8.5): written every few seconds with a short TTL. */
export interface Heartbeat {
  worker_id: string;
  engine_id: string;
  docker_ok: boolean;
  at: string;
}

export async function publishHeartbeat(redis: Redis, prefix: string, hb: Heartbeat, ttlSeconds = 15): Promise<void> {
  await redis.set(redisKey(prefix, "heartbeat", hb.worker_id), JSON.stringify(hb), "EX", ttlSeconds);
}

export async function removeHeartbeat(redis: Redis, prefix: string, workerId: string): Promise<void> {
  await redis.del(redisKey(prefix, "heartbeat", workerId));
}

export async function readHeartbeats(redis: Redis, prefix: string): Promise<Heartbeat[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(cursor, "MATCH", redisKey(prefix, "heartbeat", "*"), "COUNT", 200);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== "0");
  if (keys.length === 0) return [];
  const values = await redis.mget(keys);
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

export type AgentState = "ok" | "docker_unreachable" | "no_workers";

/** `ok` when a fresh heartbeat reached Docker; `docker_unreachable` when fresh ones did not (§8.9). */
export function agentState(beats: Heartbeat[], now: Date, freshnessSeconds: number): AgentState {
  const fresh = beats.filter((b) => now.getTime() - Date.parse(b.at) <= freshnessSeconds * 1000);
  if (fresh.length === 0) return "no_workers";
  return fresh.some((b) => b.docker_ok) ? "ok" : "docker_unreachable";
}
