import { z } from "zod";
import { setUserExpiry } from "../../../shared/services/users/set-expiry.js";
import { setUserExpiryInput } from "../../../shared/services/users/schemas.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { jsonDoc, std, userDoc } from "../docs.js";

export const setUserExpiryRoute = defineRoute({
  method: "put",
  path: "/v1/admin/users/{userID}/expiry",
  access: "admin",
  summary: "Set or clear (null) a user's expiry",
  tags: ["users"],
  body: setUserExpiryInput,
  responses: {
    200: jsonDoc("User", z.object({ user: userDoc })),
    400: std[400],
    401: std[401],
    403: std[403],
    404: std[404],
    409: std[409],
  },
  handler: async ({ c, ctx, params, body }) =>
    json(c, 200, await setUserExpiry({ ctx, userId: params.userID!, expiresAt: body.expires_at })),
});
