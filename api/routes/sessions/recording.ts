import type { Context } from "hono";
import { openRecording } from "../../../shared/services/sessions/query.js";
import { defineRoute } from "../../http/route.js";
import { std } from "../docs.js";

/** asciicast v2 (docs/sessions.md#recording): one JSON header line, then one event per line. */
export const ASCIICAST_TYPE = "application/x-asciicast";

const castDoc = {
  description: "The recording as an asciicast v2 file, streamed",
  content: { [ASCIICAST_TYPE]: { schema: { type: "string" as const } } },
};

function castResponse(c: Context, r: Awaited<ReturnType<typeof openRecording>>): Response {
  const id = c.get("requestId" as never) as string | undefined;
  return new Response(r.stream, {
    status: 200,
    headers: {
      "content-type": ASCIICAST_TYPE,
      "content-disposition": `attachment; filename="session-${r.sessionId}.cast"`,
      // Tenant bytes (and, in input mode, whatever was typed): never sniffed, never cached.
      "x-content-type-options": "nosniff",
      "cache-control": "no-store",
      ...(id ? { "x-request-id": id } : {}),
    },
  });
}

export const getRecordingRoute = defineRoute({
  method: "get",
  path: "/v1/admin/sessions/{sessionID}/recording",
  access: "admin",
  summary: "Download a session's recording (asciicast v2)",
  tags: ["sessions"],
  responses: { 200: castDoc, 401: std[401], 403: std[403], 404: std[404] },
  handler: async ({ c, ctx, params }) => castResponse(c, await openRecording({ ctx, id: params.sessionID! })),
});

export const getOwnRecordingRoute = defineRoute({
  method: "get",
  path: "/v1/user/sessions/{sessionID}/recording",
  access: "user",
  summary: "Download the recording of one of your sessions (asciicast v2)",
  tags: ["portal"],
  responses: { 200: castDoc, 401: std[401], 404: std[404] },
  handler: async ({ c, ctx, params }) =>
    castResponse(c, await openRecording({ ctx, id: params.sessionID!, ownerId: ctx.actor!.id })),
});
