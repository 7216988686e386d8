import { z } from "zod";
import { errorView, sshKeyView, userView } from "../../shared/views/index.js";

/** Response documentation for /openapi.json, from the view schemas the renderers are typed by. */
export const errorDoc = { content: { "application/json": { schema: errorView } } };

export const userDoc = userView;

export const keyDoc = sshKeyView;

/** A JSON response and its schema (a view of shared/views: the contract the harness checks). */
export const jsonDoc = (description: string, schema: z.ZodType) => ({
  description,
  content: { "application/json": { schema } },
});

export const listDoc = (key: string, item: z.ZodType) =>
  z.object({ [key]: z.array(item), total: z.number().int(), limit: z.number().int(), offset: z.number().int() });

export const std = {
  400: { description: "Invalid request", ...errorDoc },
  401: { description: "Missing, invalid or revoked token", ...errorDoc },
  403: { description: "Role not allowed", ...errorDoc },
  404: { description: "Not found", ...errorDoc },
  409: { description: "Conflict", ...errorDoc },
  413: { description: "Body over 1 MiB", ...errorDoc },
  429: { description: "Too many failed attempts", ...errorDoc },
};

/** Every mutating route a user token may call is budgeted per user (api/http/route.ts). */
export const throttledDoc = {
  description: "Too many requests: the caller's per-user budget (rate_limited), or too many tasks waiting for the host (too_many_tasks); see retry_after",
  ...errorDoc,
};
