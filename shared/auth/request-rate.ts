import type { Redis } from "ioredis";
import { ServiceError } from "../errors.js";
import { BackendUnavailableError } from "../infra-errors.js";
import { redisKey } from "../redis.js";

// KEYS[1]: the window's counter; ARGV: limit, window ms. Returns 0 when counted, else the ms left.
// The window starts with its first request and is never extended; a refused request is not counted.
const TAKE = `
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]); ttl = tonumber(ARGV[2]) end
  return ttl
end
redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;

export const RequestsThrottled = (retryAfterSeconds: number) =>
  new ServiceError("rate_limited", "rate_limited", "too many requests; try again later", {
    retryAfterSeconds: Math.max(1, Math.ceil(retryAfterSeconds)),
  });

/**
 * Per-user request budget for mutating routes (issue 10 §2, task floods): at most `limit`
 * requests per `windowSeconds` per user, across every api process (one Redis counter per user and
 * window, one script call per request). Beyond it: 429 `rate_limited` with `retry_after`.
 */
export class RequestRate {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly limit: number,
    private readonly windowSeconds: number,
  ) {}

  /** Spend one request of `subject`'s budget (a user id and token version), or throw 429. */
  async take(subject: string): Promise<void> {
    let left: number;
    try {
      left = Number(await this.redis.eval(TAKE, 1, redisKey(this.prefix, "mutations", subject), String(this.limit), String(this.windowSeconds * 1000)));
    } catch (err) {
      throw new BackendUnavailableError("redis", err);
    }
    if (left > 0) throw RequestsThrottled(left / 1000);
  }
}
