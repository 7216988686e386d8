import { renderScript } from "../../../shared/services/access/scripts.js";
import { defineRoute } from "../../http/route.js";
import { shellScriptDoc, shellScriptResponse } from "./shell-script.js";

/** `GET /v1/bootstrap/script` (docs/api.md#bootstrap): only PUBLIC_BASE_URL is embedded, never the Host header. */
export const bootstrapScriptRoute = defineRoute({
  method: "get",
  path: "/v1/bootstrap/script",
  access: "public",
  summary: "The bootstrap shell script",
  tags: ["bootstrap"],
  responses: { 200: shellScriptDoc("The bootstrap script (run with bash)") },
  handler: async ({ c, deps }) => shellScriptResponse(c, renderScript("bootstrap", { BASE_URL: deps.config.PUBLIC_BASE_URL })),
});
