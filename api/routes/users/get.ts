import { getUser } from "../../../shared/services/users/get.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { userDetailView } from "../../../shared/views/index.js";
import { jsonDoc, std } from "../docs.js";

export const getUserRoute = defineRoute({
  method: "get",
  path: "/v1/admin/users/{userID}",
  access: "admin",
  summary: "Get a user with their hosts",
  tags: ["users"],
  responses: {
    200: jsonDoc("User", userDetailView),
    401: std[401],
    403: std[403],
    404: std[404],
  },
  handler: async ({ c, ctx, params }) => json(c, 200, await getUser({ ctx, userId: params.userID! })),
});
