import type { Context } from "hono";
import { TooManyConnections } from "../../shared/errors.js";
import type { Actor } from "../../shared/services/context.js";
import type { ApiDeps } from "../deps.js";
import { acquireConnectionSlot, logSlotRefusal } from "../http/connection-slots.js";
import type { LiveAudience, LiveEventName } from "./hub.js";

/**
 * A Server-Sent Events response fed by the live hub.
 *
 * - `event: ready` once the hub has a baseline (the client reloads its lists then: no gap);
 * - `event: task` / `host` / `host_removed` with a JSON payload per change;
 * - a `: ping` comment every SSE_HEARTBEAT_SECONDS so that idle proxies keep the connection;
 * - the token is re-checked every SSE_AUTH_RECHECK_SECONDS with the per-request checks of
 *   docs/api.md#token-checks; when it no longer passes, `event: revoked` and the stream ends.
 *
 * A client that does not read fast enough is dropped rather than buffered without bound: it
 * reconnects (or polls) and reloads, which costs it nothing it could not recover.
 *
 * Each stream holds one of its user's SSE_MAX_STREAMS_PER_USER slots (api/http/connection-slots.ts,
 * counted across replicas): the next one is 429 `too_many_connections` before anything streams,
 * and closing a stream — by the client, a revocation or shutdown — gives its slot back.
 */

/** Bytes queued for one slow client before it is dropped. */
const MAX_QUEUED_BYTES = 1024 * 1024;

const encoder = new TextEncoder();

export function frame(event: string, data: unknown): string {
  // JSON never contains a raw newline, so one `data:` line carries the whole payload.
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export async function openLiveStream(args: {
  c: Context;
  deps: ApiDeps;
  actor: Actor;
  token: string;
  audience: LiveAudience;
}): Promise<Response> {
  const { deps, actor, token, audience } = args;
  const cfg = deps.config;
  const log = deps.logger.child({ stream: audience.kind, actor_id: actor.id });
  const slot = await acquireConnectionSlot(deps.redis, {
    prefix: cfg.REDIS_PREFIX,
    kind: "sse",
    userId: actor.id,
    limit: cfg.SSE_MAX_STREAMS_PER_USER,
    logger: log,
  });
  if (!slot) {
    logSlotRefusal(deps.logger, "sse", { actor_id: actor.id, limit: cfg.SSE_MAX_STREAMS_PER_USER });
    throw TooManyConnections("live-update streams", cfg.SSE_MAX_STREAMS_PER_USER);
  }
  let cleanup: () => void = () => slot.release();

  const stream = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        let done = false;
        const write = (text: string) => {
          if (done) return;
          const size = controller.desiredSize;
          if (size !== null && size < -MAX_QUEUED_BYTES) {
            log.warn("live stream dropped: client does not read");
            end();
            return;
          }
          controller.enqueue(encoder.encode(text));
        };
        const end = () => {
          if (done) return;
          done = true;
          cleanup();
          try {
            controller.close();
          } catch {
            // already closed or canceled by the client
          }
        };

        const unsubscribe = deps.live.subscribe(audience, {
          send: (event: LiveEventName, data: unknown) => write(frame(event, data)),
          ready: () => write(frame("ready", { role: actor.role, poll_interval_ms: cfg.SSE_POLL_INTERVAL_MS })),
          close: () => {
            write(frame("closing", { reason: "shutdown" }));
            end();
          },
        });
        const heartbeat = setInterval(() => write(": ping\n\n"), cfg.SSE_HEARTBEAT_SECONDS * 1000);
        let checking = false;
        const recheck = setInterval(async () => {
          if (checking || done) return;
          checking = true;
          try {
            const again = await deps.authenticate(token);
            if (!again || again.id !== actor.id || again.role !== actor.role) {
              write(frame("revoked", { reason: "unauthorized" }));
              end();
            }
          } catch (err) {
            // Postgres briefly away: keep the stream; the next check decides.
            log.warn({ err: (err as Error).message }, "live stream token re-check failed");
          } finally {
            checking = false;
          }
        }, cfg.SSE_AUTH_RECHECK_SECONDS * 1000);
        cleanup = () => {
          done = true;
          slot.release();
          unsubscribe();
          clearInterval(heartbeat);
          clearInterval(recheck);
        };
        // An initial comment flushes the headers through buffering proxies at once.
        write(": connected\n\n");
      },
      cancel() {
        // The client went away (node-server cancels the body when the socket closes).
        cleanup();
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: 64 * 1024 }),
  );

  const requestId = args.c.get("requestId" as never) as string | undefined;
  return new Response(stream, {
    status: 200,
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-accel-buffering": "no",
      ...(requestId ? { "x-request-id": requestId } : {}),
    },
  });
}
