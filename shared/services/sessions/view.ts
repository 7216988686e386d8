import { z } from "zod";
import { recordingModes, sessionKinds, type SessionRow } from "../../db/schema/sessions.js";

/**
 * The session object of docs/sessions.md (`GET …/sessions`): who, from where, when, how long,
 * bytes each way, how it ended, and its recording. `username` and `host_short_id` are null once
 * the user or host is gone (session records outlive both).
 */
export const sessionView = z.object({
  id: z.string().uuid(),
  kind: z.enum(sessionKinds),
  host_id: z.string().uuid(),
  host_short_id: z.string().nullable(),
  user_id: z.string().uuid(),
  username: z.string().nullable(),
  /** The SSH login name, or for a desktop session the account that opened it. */
  login: z.string(),
  /** publickey, password, ticket (SSH); admin, user (the portal a desktop was opened from). */
  method: z.string().nullable(),
  source_ip: z.string().nullable(),
  started_at: z.string(),
  ended_at: z.string().nullable(),
  /** Until `ended_at`, or until now for an open session. */
  duration_ms: z.number().int(),
  open: z.boolean(),
  /** Client → host. */
  bytes_in: z.number().int(),
  /** Host → client. */
  bytes_out: z.number().int(),
  end_reason: z.string().nullable(),
  recording: z.enum(recordingModes),
  recording_bytes: z.number().int(),
  recording_truncated: z.boolean(),
  /** A recording can be downloaded (`…/sessions/{id}/recording`). */
  has_recording: z.boolean(),
});
export type SessionView = z.output<typeof sessionView>;

export function renderSession(
  row: SessionRow,
  extra: { username: string | null; hostShortId: string | null; hasRecording: boolean },
  now: Date,
  /** Rendered for the host's owner (the /v1/user routes): an admin's own address is not theirs to see. */
  forOwner = false,
): SessionView {
  return {
    id: row.id,
    kind: row.kind,
    host_id: row.hostId,
    host_short_id: extra.hostShortId,
    user_id: row.userId,
    username: extra.username,
    login: row.login,
    method: row.method,
    source_ip: forOwner && row.method === "admin" ? null : row.sourceIp,
    started_at: row.startedAt.toISOString(),
    ended_at: row.endedAt?.toISOString() ?? null,
    duration_ms: Math.max(0, (row.endedAt ?? now).getTime() - row.startedAt.getTime()),
    open: row.endedAt === null,
    bytes_in: Number(row.bytesIn),
    bytes_out: Number(row.bytesOut),
    end_reason: row.endReason,
    recording: row.recording,
    recording_bytes: row.recordingBytes,
    recording_truncated: row.recordingTruncated,
    has_recording: extra.hasRecording,
  };
}
