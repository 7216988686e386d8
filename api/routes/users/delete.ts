import { deleteUser } from "../../../shared/services/users/delete.js";
import { noContent } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { std } from "../docs.js";

export const deleteUserRoute = defineRoute({
  method: "delete",
  path: "/v1/admin/users/{userID}",
  access: "admin",
  summary: "Delete a user (their hosts are torn down)",
  tags: ["users"],
  responses: { 204: { description: "Deleted" }, 401: std[401], 403: std[403], 404: std[404], 409: std[409] },
  handler: async ({ c, ctx, params }) => {
    await deleteUser({ ctx, userId: params.userID! });
    return noContent(c);
  },
});
