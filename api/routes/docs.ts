import { z } from "zod";

/** Response shapes for /openapi.json (documentation only; handlers build the objects). */
export const errorDoc = {
  content: {
    "application/json": {
      schema: z.object({
        error: z.string(),
        code: z.string(),
        details: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
      }),
    },
  },
};

export const userDoc = z.object({
  id: z.string().uuid(),
  username: z.string(),
  role: z.enum(["admin", "user"]),
  status: z.enum(["active", "disabled"]),
  expires_at: z.string().nullable(),
  expired: z.boolean(),
  created_at: z.string(),
  updated_at: z.string(),
});

export const keyDoc = z.object({
  id: z.string().uuid(),
  user_id: z.string().uuid(),
  label: z.string(),
  key_type: z.enum(["ed25519", "ecdsa", "rsa"]),
  fingerprint: z.string(),
  public_key: z.string(),
  created_at: z.string(),
});

export const jsonDoc = (description: string, schema: z.ZodType = z.object({}).passthrough()) => ({
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
