import { logoutEverywhere } from "../../../shared/services/auth/logout-all.js";
import { defineRoute } from "../../http/route.js";
import { std } from "../docs.js";

export const logoutAllRoute = defineRoute({
  method: "post",
  path: "/v1/auth/logout-all",
  access: "user",
  unbudgeted: true,
  summary: "Log out everywhere: end every token and desktop session of the caller (any role)",
  tags: ["auth"],
  responses: { 204: { description: "Every token of yours, this one included, no longer works" }, 401: std[401] },
  handler: async ({ ctx }) => {
    await logoutEverywhere({ ctx });
    return new Response(null, { status: 204 });
  },
});
