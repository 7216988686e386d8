import { entryScriptTarget } from "../../../shared/services/access/entry.js";
import { renderScript } from "../../../shared/services/access/scripts.js";
import { defineRoute } from "../../http/route.js";
import { errorDoc } from "../docs.js";
import { shellScriptDoc, shellScriptResponse } from "../bootstrap/shell-script.js";

/**
 * `GET /entry/{shortId}` (docs/api.md#entry), also the only route of the ENTRY_LISTEN_ADDR
 * listener. The id is embedded only after it matched a live host; the URL is PUBLIC_BASE_URL.
 */
export const entryScriptRoute = defineRoute({
  method: "get",
  path: "/entry/{shortId}",
  access: "public",
  summary: "The entry shell script of a host",
  tags: ["entry"],
  responses: {
    200: shellScriptDoc("The entry script (run with bash)"),
    404: { description: "not_found: malformed, unknown or deleting short id", ...errorDoc },
  },
  handler: async ({ c, ctx, deps, params }) => {
    const { shortId } = await entryScriptTarget({ ctx: { ...ctx, limiter: deps.limiter }, shortId: params.shortId! });
    return shellScriptResponse(c, renderScript("entry", { BASE_URL: deps.config.PUBLIC_BASE_URL, SHORT_ID: shortId }));
  },
});
