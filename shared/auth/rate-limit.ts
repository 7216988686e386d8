import type { Redis } from "ioredis";
import { BackendUnavailableError } from "../infra-errors.js";
import { redisKey } from "../redis.js";

/** A pipeline reports per-command errors in its results instead of rejecting: surface them. */
async function execStrict(pipeline: ReturnType<Redis["pipeline"]>): Promise<unknown[]> {
  let res: [Error | null, unknown][] | null;
  try {
    res = await pipeline.exec();
  } catch (err) {
    throw new BackendUnavailableError("redis", err);
  }
  if (!res) throw new BackendUnavailableError("redis", new Error("pipeline aborted"));
  for (const [err] of res) if (err) throw new BackendUnavailableError("redis", err);
  return res.map(([, v]) => v);
}

/**
 * Password-failure counters (behaviour.md §2.4): fixed windows that start at the first failure.
 * Keys: `<prefix>:authfail:user:<username>` and `<prefix>:authfail:ip:<ip>`.
 */
export interface FailureLimits {
  maxPerUser: number;
  maxPerIp: number;
  windowSeconds: number;
}

export interface LimitKey {
  type: "user" | "ip";
  value: string;
}

export interface Blocked {
  key: LimitKey;
  retryAfterSeconds: number;
  /** True for the first rejection of this key in its window (the caller writes an event then). */
  firstRejection: boolean;
}

export class FailureLimiter {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly limits: FailureLimits,
    private readonly namespace = "authfail",
  ) {}

  private key(k: LimitKey) {
    return redisKey(this.prefix, this.namespace, k.type, k.value);
  }

  private max(k: LimitKey) {
    return k.type === "user" ? this.limits.maxPerUser : this.limits.maxPerIp;
  }

  /** Returns the first key that has reached its limit, or null. */
  async check(keys: LimitKey[]): Promise<Blocked | null> {
    if (keys.length === 0) return null;
    const pipeline = this.redis.pipeline();
    for (const k of keys) {
      pipeline.get(this.key(k));
      pipeline.pttl(this.key(k));
    }
    // Fail closed: if the counters cannot be read, no password is checked (503 upstream).
    const res = await execStrict(pipeline);
    for (let i = 0; i < keys.length; i++) {
      const count = res[i * 2];
      const pttl = res[i * 2 + 1];
      const k = keys[i]!;
      if (Number(count ?? 0) >= this.max(k)) {
        const retryAfterSeconds = Math.max(1, Math.ceil(Number(pttl) / 1000));
        const notified = await this.redis.set(
          `${this.key(k)}:notified`,
          "1",
          "PX",
          Math.max(1000, Number(pttl)),
          "NX",
        );
        return { key: k, retryAfterSeconds, firstRejection: notified === "OK" };
      }
    }
    return null;
  }

  async recordFailure(keys: LimitKey[]): Promise<void> {
    const pipeline = this.redis.pipeline();
    for (const k of keys) {
      pipeline.incr(this.key(k));
      // NX: the window starts at the first failure and is not extended by later ones.
      pipeline.expire(this.key(k), this.limits.windowSeconds, "NX");
    }
    await execStrict(pipeline);
  }

  async reset(key: LimitKey): Promise<void> {
    await this.redis.del(this.key(key), `${this.key(key)}:notified`);
  }
}
