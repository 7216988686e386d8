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

async function evalStrict(redis: Redis, script: string, keys: string[], args: string[]): Promise<unknown> {
  try {
    return await redis.eval(script, keys.length, ...keys, ...args);
  } catch (err) {
    throw new BackendUnavailableError("redis", err);
  }
}

/**
 * Password-failure counters (docs/api.md#limits): fixed windows that start at the first failure.
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

// KEYS: counters; ARGV: the limit of each counter, then the window in ms. Returns {index, pttl} of
// the first counter at its limit (1-based), or {0, 0} after counting one attempt on every counter.
// A counter's window starts with its first count and is never extended (PEXPIRE only when new).
const ACQUIRE_SCRIPT = `
local n = #KEYS
for i = 1, n do
  local count = tonumber(redis.call('GET', KEYS[i]) or '0')
  if count >= tonumber(ARGV[i]) then
    return {i, redis.call('PTTL', KEYS[i])}
  end
end
for i = 1, n do
  redis.call('INCR', KEYS[i])
  if redis.call('PTTL', KEYS[i]) < 0 then redis.call('PEXPIRE', KEYS[i], ARGV[n + 1]) end
end
return {0, 0}
`;

// Give back one counted attempt; a counter that drops to zero goes, so no window is left behind
// by attempts that were not failures (and a counter that expired meanwhile is not resurrected).
const RELEASE_SCRIPT = `
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 and redis.call('DECR', KEYS[i]) <= 0 then
    redis.call('DEL', KEYS[i])
  end
end
return 0
`;

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

  /**
   * Atomically: if any key has reached its limit, return it (nothing is counted); otherwise count
   * one attempt against every key and return null. The caller then `release`s the keys the attempt
   * turns out not to have failed.
   *
   * Why not `check` + `recordFailure`: a password check takes tens of milliseconds, so a burst of
   * concurrent guesses all passed `check` before the first failure was counted, which gave an
   * attacker an unlimited number of guesses per burst (found by test/integration/auth.test.ts).
   * Counting up front, in one script, makes the limit hold under concurrency.
   */
  async acquire(keys: LimitKey[]): Promise<Blocked | null> {
    if (keys.length === 0) return null;
    // Fail closed, like `check`: if the counters cannot be read, no password is checked.
    const [index, pttl] = (await evalStrict(
      this.redis,
      ACQUIRE_SCRIPT,
      keys.map((k) => this.key(k)),
      [...keys.map((k) => String(this.max(k))), String(this.limits.windowSeconds * 1000)],
    )) as [number, number];
    if (index === 0) return null;
    return this.blocked(keys[index - 1]!, Number(pttl));
  }

  /** Un-count an attempt taken by `acquire` that was not a failure (e.g. a correct password). */
  async release(keys: LimitKey[]): Promise<void> {
    if (keys.length === 0) return;
    await evalStrict(this.redis, RELEASE_SCRIPT, keys.map((k) => this.key(k)), []);
  }

  private async blocked(k: LimitKey, pttl: number): Promise<Blocked> {
    const retryAfterSeconds = Math.max(1, Math.ceil(pttl / 1000));
    const notified = await this.redis.set(`${this.key(k)}:notified`, "1", "PX", Math.max(1000, pttl), "NX");
    return { key: k, retryAfterSeconds, firstRejection: notified === "OK" };
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
      if (Number(count ?? 0) >= this.max(k)) return this.blocked(k, Number(pttl));
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
