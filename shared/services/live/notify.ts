import type { Redis } from "ioredis";
import { z } from "zod";
import { withoutLogContext } from "../../log-context.js";
import type { Logger } from "../../logger.js";
import { createRedis, redisKey } from "../../redis.js";

/**
 * "Something changed" notifications for the live-update hubs (docs/architecture.md#live-updates).
 * A writer publishes one after the transaction that moved a task or host row has committed; every
 * API process's hub then runs its diff poll at once instead of at the next interval. The message
 * carries no data the hub trusts: what is delivered, and to whom, is still read from Postgres by
 * the poll (shared/services/live/changes.ts), so a lost, duplicated or forged message can only
 * delay or add a poll, never show anyone something.
 */

export const liveChangeSchema = z.object({ kind: z.enum(["task", "host"]), id: z.string().max(64) });
export type LiveChange = z.infer<typeof liveChangeSchema>;
/** Publish a change after commit; best effort, never throws, never waits. */
export type LiveNotifier = (change: LiveChange) => void;

export const liveChannel = (prefix: string) => redisKey(prefix, "live");

/** A notifier on an existing (command-mode) connection. A Redis outage only delays: the hubs still poll. */
export function createLiveNotifier(redis: Redis, prefix: string, logger?: Logger): LiveNotifier {
  const channel = liveChannel(prefix);
  let warned = false;
  return (change) => {
    redis.publish(channel, JSON.stringify(change)).then(
      () => {
        warned = false;
      },
      (err: unknown) => {
        // Once per outage: every step of every task would otherwise log it.
        if (warned) return;
        warned = true;
        logger?.warn({ err: (err as Error).message }, "could not publish a live-update notification; streams fall back to polling");
      },
    );
  };
}

/** For processes and tests that publish nothing (the hubs' interval poll still sees their changes). */
export const noLiveNotifier: LiveNotifier = () => {};

/**
 * Listen for notifications on a connection of its own (Redis puts a subscribed connection in
 * subscriber mode), calling `onChange` for each well-formed one, and once more each time the
 * subscription is (re)established: messages published while it was down are lost, so the caller
 * looks at once rather than at its next interval. Returns the function that closes the connection.
 */
export function listenLiveChanges(opts: {
  redisUrl: string;
  prefix: string;
  logger: Logger;
  onChange: (change: LiveChange | null) => void;
}): () => void {
  const channel = liveChannel(opts.prefix);
  // The connection serves every stream of the process: its callbacks must not run in the log
  // context of the request that happened to open it (shared/log-context.ts).
  return withoutLogContext(() => {
    const sub = createRedis(opts.redisUrl, { name: "ccp-api-live" });
    let warned = false;
    sub.on("error", (err: Error) => {
      if (warned) return;
      warned = true;
      opts.logger.warn({ err: err.message }, "live-update subscription lost; streams fall back to polling");
    });
    sub.on("message", (ch: string, raw: string) => {
      if (ch !== channel) return;
      let change: LiveChange;
      try {
        change = liveChangeSchema.parse(JSON.parse(raw));
      } catch {
        return;
      }
      opts.onChange(change);
    });
    const subscribe = () => {
      sub.subscribe(channel).then(
        () => {
          warned = false;
          opts.onChange(null);
        },
        () => {}, // not connected: "ready" calls again
      );
    };
    // ioredis re-subscribes by itself after a reconnect, but only this tells us that it happened.
    sub.on("ready", subscribe);
    return () => {
      sub.removeAllListeners("message");
      sub.removeAllListeners("ready");
      sub.disconnect();
    };
  });
}
