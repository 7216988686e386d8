import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadEnvironment } from "../../shared/config/env-file.js";
import { createRedis, deletePrefixedKeys, waitForRedis } from "../../shared/redis.js";
import { FailureLimiter, type LimitKey } from "../../shared/auth/rate-limit.js";

// Real Redis, a prefix of this file's own; no test sleeps: time passing is simulated with PEXPIRE.
let redis: Redis;
const prefix = `t${randomBytes(5).toString("hex")}`;
const WINDOW = 900;
const limits = { maxPerUser: 3, maxPerIp: 5, windowSeconds: WINDOW };
let limiter: FailureLimiter;

let seq = 0;
const fresh = () => {
  const n = `${Date.now().toString(36)}${seq++}`;
  const user: LimitKey = { type: "user", value: `alice${n}` };
  const ip: LimitKey = { type: "ip", value: `192.0.2.${seq % 250}-${n}` };
  return { user, ip };
};
const keyOf = (k: LimitKey) => `${prefix}:authfail:${k.type}:${k.value}`;

async function fail(keys: LimitKey[], times: number) {
  for (let i = 0; i < times; i++) await limiter.recordFailure(keys);
}

beforeAll(async () => {
  const env = loadEnvironment();
  redis = createRedis(env.REDIS_URL ?? "redis://127.0.0.1:6379", { name: "ccp-test-rate-limit" });
  await waitForRedis(redis);
  limiter = new FailureLimiter(redis, prefix, limits);
});

afterAll(async () => {
  await deletePrefixedKeys(redis, prefix);
  redis.disconnect();
});

describe("FailureLimiter", () => {
  it("counts failures under the documented key and blocks at the limit, not before", async () => {
    const { user, ip } = fresh();
    expect(await redis.exists(keyOf(user))).toBe(0);
    await fail([user, ip], limits.maxPerUser - 1);
    expect(await redis.get(keyOf(user))).toBe(String(limits.maxPerUser - 1));
    expect(await redis.get(keyOf(ip))).toBe(String(limits.maxPerUser - 1));
    expect(await limiter.check([user, ip])).toBeNull();
    await fail([user, ip], 1);
    const blocked = await limiter.check([user, ip]);
    expect(blocked).not.toBeNull();
    expect(blocked!.key).toEqual(user);
    expect(blocked!.retryAfterSeconds).toBeGreaterThanOrEqual(WINDOW - 5);
    expect(blocked!.retryAfterSeconds).toBeLessThanOrEqual(WINDOW);
  });

  it("starts the window at the first failure and does not extend it with later failures", async () => {
    const { user, ip } = fresh();
    await fail([user, ip], 1);
    const first = await redis.pttl(keyOf(user));
    expect(first).toBeGreaterThan((WINDOW - 5) * 1000);
    expect(first).toBeLessThanOrEqual(WINDOW * 1000);
    // Pretend most of the window has passed, then fail again: the remaining lifetime must not grow.
    await redis.pexpire(keyOf(user), 5000);
    await redis.pexpire(keyOf(ip), 7000);
    await fail([user, ip], 2);
    const user2 = await redis.pttl(keyOf(user));
    const ip2 = await redis.pttl(keyOf(ip));
    expect(user2).toBeGreaterThan(0);
    expect(user2).toBeLessThanOrEqual(5000);
    expect(ip2).toBeGreaterThan(0);
    expect(ip2).toBeLessThanOrEqual(7000);
    expect(await redis.get(keyOf(user))).toBe("3");
  });

  it("reports Retry-After as the remaining lifetime of the blocking counter, rounded up, at least 1", async () => {
    const { user, ip } = fresh();
    await fail([user], limits.maxPerUser);
    await redis.pexpire(keyOf(user), 1500);
    expect((await limiter.check([user, ip]))!.retryAfterSeconds).toBe(2);
    await redis.pexpire(keyOf(user), 200);
    expect((await limiter.check([user, ip]))!.retryAfterSeconds).toBe(1);
  });

  it("blocks on the IP key when only the IP has reached its limit", async () => {
    const { ip } = fresh();
    for (let i = 0; i < limits.maxPerIp; i++) await limiter.recordFailure([{ type: "user", value: `u${i}-${ip.value}` }, ip]);
    const other = fresh().user;
    expect(await limiter.check([other])).toBeNull();
    const blocked = await limiter.check([other, ip]);
    expect(blocked?.key).toEqual(ip);
  });

  it("marks only the first rejection of a key in its window", async () => {
    const { user, ip } = fresh();
    await fail([user, ip], limits.maxPerUser);
    expect((await limiter.check([user, ip]))!.firstRejection).toBe(true);
    expect((await limiter.check([user, ip]))!.firstRejection).toBe(false);
    expect((await limiter.check([user]))!.firstRejection).toBe(false);
    // The marker lives no longer than the window it belongs to.
    const marker = await redis.pttl(`${keyOf(user)}:notified`);
    expect(marker).toBeGreaterThan(0);
    expect(marker).toBeLessThanOrEqual(WINDOW * 1000);
  });

  it("reset clears the counter and its first-rejection marker, and only that key", async () => {
    const { user, ip } = fresh();
    await fail([user, ip], limits.maxPerUser);
    expect((await limiter.check([user]))!.firstRejection).toBe(true);
    await limiter.reset(user);
    expect(await redis.exists(keyOf(user), `${keyOf(user)}:notified`)).toBe(0);
    expect(await limiter.check([user])).toBeNull();
    expect(await redis.get(keyOf(ip))).toBe(String(limits.maxPerUser));
    // A new window: its first rejection is reported again.
    await fail([user], limits.maxPerUser);
    expect((await limiter.check([user]))!.firstRejection).toBe(true);
  });

  it("keeps counters of different prefixes and namespaces apart", async () => {
    const { user } = fresh();
    await fail([user], limits.maxPerUser);
    const otherPrefix = new FailureLimiter(redis, `${prefix}x`, limits);
    const otherNs = new FailureLimiter(redis, prefix, limits, "sshfail");
    expect(await otherPrefix.check([user])).toBeNull();
    expect(await otherNs.check([user])).toBeNull();
  });

  describe("acquire / release (count first, atomically)", () => {
    it("lets exactly `max` attempts of a concurrent burst through", async () => {
      const { user } = fresh();
      const results = await Promise.all(Array.from({ length: 20 }, () => limiter.acquire([user])));
      expect(results.filter((r) => r === null)).toHaveLength(limits.maxPerUser);
      expect(results.filter((r) => r !== null && r.key.type === "user")).toHaveLength(20 - limits.maxPerUser);
      // Rejected attempts are not counted: the counter stops at the limit.
      expect(await redis.get(keyOf(user))).toBe(String(limits.maxPerUser));
      expect(results.filter((r) => r?.firstRejection)).toHaveLength(1);
    });

    it("counts every key, and counts nothing when one key is blocked", async () => {
      const { user, ip } = fresh();
      await fail([ip], limits.maxPerIp);
      expect((await limiter.acquire([user, ip]))?.key).toEqual(ip);
      expect(await redis.exists(keyOf(user))).toBe(0);
      expect(await redis.get(keyOf(ip))).toBe(String(limits.maxPerIp));
      const other = fresh();
      expect(await limiter.acquire([other.user, other.ip])).toBeNull();
      expect(await redis.get(keyOf(other.user))).toBe("1");
      expect(await redis.get(keyOf(other.ip))).toBe("1");
    });

    it("starts the window at the first attempt and never extends it", async () => {
      const { user } = fresh();
      expect(await limiter.acquire([user])).toBeNull();
      const first = await redis.pttl(keyOf(user));
      expect(first).toBeGreaterThan((WINDOW - 5) * 1000);
      expect(first).toBeLessThanOrEqual(WINDOW * 1000);
      await redis.pexpire(keyOf(user), 4000);
      expect(await limiter.acquire([user])).toBeNull();
      const later = await redis.pttl(keyOf(user));
      expect(later).toBeGreaterThan(0);
      expect(later).toBeLessThanOrEqual(4000);
      // A counter left without a lifetime (never written that way, but never let one live forever).
      await redis.persist(keyOf(user));
      expect(await limiter.acquire([user])).toBeNull();
      expect(await redis.pttl(keyOf(user))).toBeGreaterThan((WINDOW - 5) * 1000);
    });

    it("reports Retry-After from the blocking counter", async () => {
      const { user } = fresh();
      await fail([user], limits.maxPerUser);
      await redis.pexpire(keyOf(user), 2500);
      const blocked = await limiter.acquire([user]);
      expect(blocked?.retryAfterSeconds).toBe(3);
      expect(blocked?.firstRejection).toBe(true);
    });

    it("release gives one attempt back, deletes a counter at zero and does not resurrect an expired one", async () => {
      const { user, ip } = fresh();
      await limiter.acquire([user, ip]);
      await limiter.acquire([user, ip]);
      await limiter.release([ip]);
      expect(await redis.get(keyOf(ip))).toBe("1");
      expect(await redis.get(keyOf(user))).toBe("2");
      await limiter.release([ip]);
      expect(await redis.exists(keyOf(ip))).toBe(0);
      await limiter.release([ip]);
      expect(await redis.exists(keyOf(ip))).toBe(0);
      // The window of the remaining counter is untouched by a release.
      await redis.pexpire(keyOf(user), 3000);
      await limiter.release([user]);
      expect(await redis.get(keyOf(user))).toBe("1");
      const pttl = await redis.pttl(keyOf(user));
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(3000);
    });
  });

  it("check with no keys is never blocked", async () => {
    expect(await limiter.check([])).toBeNull();
  });
});
