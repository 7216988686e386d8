import type { Redis } from "ioredis";
import { z } from "zod";
import type { Logger } from "../logger.js";
import { redisKey } from "../redis.js";

/**
 * Access revocations broadcast to every SSH proxy replica (docs/architecture.md#ssh-proxy "Session closing"):
 * live sessions of a user or a host are closed when the owner is disabled, expires or is deleted,
 * and when the host is stopped, rebuilt or deleted.
 */
export const revocationSchema = z.object({
  scope: z.enum(["user", "host"]),
  id: z.string().uuid(),
  reason: z.enum(["user_disabled", "user_expired", "user_deleted", "user_logged_out", "host_stopped", "host_rebuilt", "host_deleted"]),
});
export type Revocation = z.infer<typeof revocationSchema>;

export const revocationChannel = (prefix: string) => redisKey(prefix, "revocations");

/** Best effort after commit: a lost message is caught by the proxy's periodic re-check. */
export async function publishRevocation(redis: Redis, prefix: string, r: Revocation, logger?: Logger): Promise<void> {
  try {
    await redis.publish(revocationChannel(prefix), JSON.stringify(r));
  } catch (err) {
    logger?.warn({ err: (err as Error).message, ...r }, "could not publish a revocation");
  }
}

/**
 * Call `onRevocation` for every well-formed revocation published under `prefix` (malformed
 * messages are ignored). Returns the unsubscribe function. `subscriber` is a connection of its
 * own: Redis puts a subscribed connection in subscriber mode.
 */
export async function subscribeRevocations(
  subscriber: Redis,
  prefix: string,
  onRevocation: (r: Revocation) => void,
): Promise<() => Promise<void>> {
  const channel = revocationChannel(prefix);
  const onMessage = (ch: string, raw: string) => {
    if (ch !== channel) return;
    let msg: Revocation;
    try {
      msg = revocationSchema.parse(JSON.parse(raw));
    } catch {
      return;
    }
    onRevocation(msg);
  };
  subscriber.on("message", onMessage);
  await subscriber.subscribe(channel);
  return async () => {
    subscriber.off("message", onMessage);
    await subscriber.unsubscribe(channel).catch(() => {});
  };
}
