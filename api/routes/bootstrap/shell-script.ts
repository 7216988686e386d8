import type { Context } from "hono";

/** A generated shell script (docs/api.md#bootstrap, docs/api.md#entry); the request id header is added by middleware. */
export function shellScriptResponse(_c: Context, script: string): Response {
  return new Response(script, { status: 200, headers: { "content-type": "text/x-shellscript; charset=utf-8" } });
}

export const shellScriptDoc = (description: string) => ({
  description,
  content: { "text/x-shellscript": { schema: { type: "string" as const } } },
});
