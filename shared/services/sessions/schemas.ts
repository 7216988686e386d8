import { z } from "zod";
import { recordingModes, sessionKinds } from "../../db/schema/sessions.js";
import { paginationShape, timestampField, uuidField } from "../../validation.js";

const boolParam = z.enum(["true", "false"], { message: "must be true or false" }).transform((v) => v === "true");

const filters = {
  ...paginationShape,
  host_id: uuidField.optional(),
  kind: z.enum(sessionKinds).optional(),
  /** Sessions started at or after / at or before (inclusive). */
  since: timestampField.optional(),
  until: timestampField.optional(),
  /** true: still open; false: ended. */
  open: boolParam.optional(),
  /** true: only sessions with a stored recording. */
  recorded: boolParam.optional(),
};

const sinceBeforeUntil = (q: { since?: Date | undefined; until?: Date | undefined }, ctx: z.RefinementCtx) => {
  if (q.since && q.until && q.since.getTime() > q.until.getTime()) {
    ctx.addIssue({ code: "custom", path: ["since"], message: "must not be after until" });
  }
};

/** `GET /v1/admin/sessions` (docs/sessions.md#api). */
export const listSessionsQuery = z.object({ ...filters, user_id: uuidField.optional() }).superRefine(sinceBeforeUntil);
export type ListSessionsQuery = z.output<typeof listSessionsQuery>;

/** `GET /v1/user/sessions`: the caller's own sessions, so no `user_id`. */
export const listOwnSessionsQuery = z.object(filters).superRefine(sinceBeforeUntil);

/** `PUT …/session-recording`: the policy of a user or host; null inherits (docs/sessions.md#recording). */
export const setRecordingInput = z.strictObject({ session_recording: z.enum(recordingModes).nullable() });
