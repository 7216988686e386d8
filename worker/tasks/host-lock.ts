import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { redisKey } from "../../shared/redis.js";

const RELEASE = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`;
const EXTEND = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end`;

/**
 * A per-host mutex in Redis, shared by every worker process: one operation per host at a time
 * (docs/architecture.md#tasks). It expires on its own if its holder dies (SIGKILL), so a redelivered job
 * can take it after `ttlMs`; a live holder extends it with every task heartbeat.
 */
export class HostLocks {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    readonly ttlMs = 30_000,
  ) {}

  async acquire(resource: string): Promise<{ release: () => Promise<void>; extend: () => Promise<boolean> } | null> {
    const key = redisKey(this.prefix, "lock", resource);
    const token = randomUUID();
    const ok = await this.redis.set(key, token, "PX", this.ttlMs, "NX");
    if (ok !== "OK") return null;
    return {
      release: async () => {
        await this.redis.eval(RELEASE, 1, key, token);
      },
      extend: async () => (await this.redis.eval(EXTEND, 1, key, token, String(this.ttlMs))) === 1,
    };
  }
}
