import { z } from "zod";

/** The task object of docs/api.md#task-object, for /openapi.json (the handlers build the objects). */
export const taskDoc = z.object({
  id: z.string().uuid(),
  kind: z.string(),
  status: z.enum(["pending", "running", "succeeded", "failed", "canceled"]),
  host_id: z.string().uuid().nullable(),
  egress_ip_id: z.string().uuid().nullable(),
  requested_by: z.string(),
  /** The X-Request-Id of the request that created the task (null for system tasks). */
  request_id: z.string().nullable(),
  attempt: z.number().int(),
  progress_percent: z.number().int(),
  progress_message: z.string().nullable(),
  error_code: z.string().nullable(),
  error_message: z.string().nullable(),
  cancel_requested: z.boolean(),
  result: z.object({}).passthrough().nullable(),
  created_at: z.string(),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
  steps: z.array(
    z.object({
      name: z.string(),
      status: z.enum(["pending", "running", "succeeded", "failed", "skipped"]),
      started_at: z.string().nullable(),
      duration_ms: z.number().int().nullable(),
    }),
  ),
});
