import { z } from "zod";
import { setHostRecording, setUserRecording } from "../../../shared/services/sessions/policy.js";
import { setRecordingInput } from "../../../shared/services/sessions/schemas.js";
import { hostAdminView } from "../../../shared/views/index.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { jsonDoc, std, userDoc } from "../docs.js";

/**
 * The recording policy (docs/sessions.md#recording), one setting each like `…/expiry`: `off`,
 * `output`, `input`, or null to inherit (host → owner → SESSION_RECORDING). It applies to SSH
 * sessions that start afterwards.
 */
export const setUserRecordingRoute = defineRoute({
  method: "put",
  path: "/v1/admin/users/{userID}/session-recording",
  access: "admin",
  summary: "Set a user's SSH session recording policy (null inherits the global default)",
  tags: ["users"],
  body: setRecordingInput,
  responses: { 200: jsonDoc("User", z.object({ user: userDoc })), 400: std[400], 401: std[401], 403: std[403], 404: std[404] },
  handler: async ({ c, ctx, params, body }) =>
    json(c, 200, await setUserRecording({ ctx, userId: params.userID!, mode: body.session_recording })),
});

export const setHostRecordingRoute = defineRoute({
  method: "put",
  path: "/v1/admin/hosts/{hostID}/session-recording",
  access: "admin",
  summary: "Set a host's SSH session recording policy (null inherits the owner's)",
  tags: ["hosts"],
  body: setRecordingInput,
  responses: { 200: jsonDoc("Host", z.object({ host: hostAdminView })), 400: std[400], 401: std[401], 403: std[403], 404: std[404] },
  handler: async ({ c, ctx, params, body }) =>
    json(c, 200, await setHostRecording({ ctx, hostId: params.hostID!, mode: body.session_recording })),
});
