import type { Context } from "hono";
import { Unauthorized } from "../../../shared/errors.js";
import { openLiveStream } from "../../live/stream.js";
import { type AnyRoute, defineRoute } from "../../http/route.js";
import { std } from "../docs.js";

const tags = ["live"];

const streamDoc = (description: string) => ({
  description,
  content: { "text/event-stream": { schema: { type: "string" as const } } },
});

const tooMany = { ...std[429], description: "too_many_connections: SSE_MAX_STREAMS_PER_USER streams already open" };

/** The bearer token of a request that the route layer already authenticated. */
function bearer(c: Context): string {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "");
  if (!m) throw Unauthorized();
  return m[1]!;
}

/**
 * Live updates as Server-Sent Events (api/live/stream.ts). Authenticated by the Authorization
 * header like every other route: the web UI reads the stream with fetch, not EventSource, so the
 * token never travels in a URL.
 */
export const liveRoutes: AnyRoute[] = [
  defineRoute({
    method: "get",
    path: "/v1/admin/sse",
    access: "admin",
    summary: "Live task and host updates (Server-Sent Events)",
    tags,
    responses: { 200: streamDoc("Event stream: ready, task, host, host_removed, revoked"), 401: std[401], 403: std[403], 429: tooMany },
    handler: async ({ c, deps, actor }) =>
      openLiveStream({ c, deps, actor: actor!, token: bearer(c), audience: { kind: "admin" } }),
  }),
  defineRoute({
    method: "get",
    path: "/v1/user/sse",
    access: "user",
    summary: "Live updates of your own hosts and their tasks (Server-Sent Events)",
    tags,
    responses: { 200: streamDoc("Event stream: ready, task, host, host_removed, revoked"), 401: std[401], 429: tooMany },
    handler: async ({ c, deps, actor }) =>
      openLiveStream({ c, deps, actor: actor!, token: bearer(c), audience: { kind: "user", userId: actor!.id } }),
  }),
];
