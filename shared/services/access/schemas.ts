import { z } from "zod";
import { asciiLower, presentedPasswordField } from "../../validation.js";

/** `POST /v1/bootstrap/sessions` (docs/api.md#bootstrap): the same shape and bounds as login. */
export const bootstrapSessionInput = z.strictObject({
  username: z
    .string()
    .refine((v) => v.length >= 1 && v.length <= 128, { message: "must be 1-128 characters" })
    .transform(asciiLower),
  password: presentedPasswordField,
});
export type BootstrapSessionInput = z.output<typeof bootstrapSessionInput>;

/** `POST /v1/entry/{shortId}/auth` (docs/api.md#entry): the owner's login password. */
export const entryAuthInput = z.strictObject({ password: presentedPasswordField });
export type EntryAuthInput = z.output<typeof entryAuthInput>;

/** Host short ids (docs/api.md#hosts), checked before anything else on the entry paths. */
export const SHORT_ID_PATTERN = /^[a-z0-9]{6}$/;

/** Response shapes, for /openapi.json. */
export const bootstrapSessionDoc = z.object({
  task_id: z.string().uuid(),
  status_url: z.string(),
  stage_code: z.literal("auth_passed"),
  stage_text: z.string(),
});

export const bootstrapTaskDoc = z.object({
  task_id: z.string().uuid(),
  task_status: z.enum(["pending", "running", "succeeded", "failed", "canceled"]),
  stage_code: z.enum(["auth_passed", "host_starting", "network_ready", "ssh_ready", "failed"]),
  stage_text: z.string(),
  progress_percent: z.number().int(),
  error_code: z.string().optional(),
  task_error_code: z.string().nullable().optional(),
  error_message: z.string().optional(),
});

export const handoffDoc = z.object({
  ready: z.literal(true),
  host: z.string(),
  port: z.number().int(),
  user: z.string(),
  password: z.string(),
  host_key: z.string(),
  known_hosts_line: z.string(),
});

export const entryAuthDoc = z.union([
  z.object({
    status: z.literal("ready"),
    ssh_user: z.string(),
    /** A one-time ticket (`ccpt_…`, HANDOFF_TICKET_TTL_SECONDS), never the host's SSH password. */
    ssh_ticket: z.string(),
    ssh_host: z.string(),
    ssh_port: z.number().int(),
    host_key: z.string(),
    known_hosts_line: z.string(),
  }),
  z.object({ status: z.literal("starting"), task_id: z.string().uuid(), status_url: z.string() }),
]);
