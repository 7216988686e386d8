import { Redis } from "ioredis";

/** One Redis connection per use; BullMQ needs `maxRetriesPerRequest: null` for its blocking ones. */
export function createRedis(url: string, opts: { forBullmq?: boolean; name?: string } = {}): Redis {
  return new Redis(url, {
    connectionName: opts.name,
    maxRetriesPerRequest: opts.forBullmq ? null : 2,
    enableOfflineQueue: opts.forBullmq ? true : false,
    lazyConnect: false,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
}

/** Redis key helper: every key, queue and channel lives under REDIS_PREFIX. */
export const redisKey = (prefix: string, ...parts: string[]) => [prefix, ...parts].join(":");

/** Delete every key under `prefix:` (a test file's or a benchmark's own namespace). */
export async function deletePrefixedKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 500);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== "0");
}

/** Resolve once the connection is ready (commands are not queued while offline). */
export async function waitForRedis(redis: Redis, timeoutMs = 15000): Promise<void> {
  if (redis.status === "ready") return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error("redis did not become ready in time"));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      redis.off("ready", onReady);
    };
    redis.on("ready", onReady);
  });
}
