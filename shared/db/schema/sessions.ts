import { sql } from "drizzle-orm";
import { bigint, boolean, check, index, integer, pgTable, primaryKey, text, uuid } from "drizzle-orm/pg-core";
import { id, ts } from "./columns.js";

export const sessionKinds = ["ssh", "desktop"] as const;
/** Session recording policy (docs/sessions.md#recording): off, the output only, or output and input. */
export const recordingModes = ["off", "output", "input"] as const;

/**
 * Every SSH and desktop session (docs/sessions.md): who, from where, when, how long, bytes each
 * way, how it ended. No foreign keys, like events: the record outlives the host and the user.
 * `ended_at` null = open (or its process died: the sweeper closes those with end_reason `lost`).
 */
export const sessions = pgTable(
  "sessions",
  {
    id: id(),
    kind: text({ enum: sessionKinds }).notNull(),
    hostId: uuid().notNull(),
    userId: uuid().notNull(),
    /** The login name (SSH) or the username (desktop) as presented. */
    login: text().notNull(),
    /** How the user authenticated: publickey, password, ticket… */
    method: text(),
    sourceIp: text(),
    startedAt: ts().notNull().defaultNow(),
    endedAt: ts(),
    bytesIn: bigint({ mode: "number" }).notNull().default(0),
    bytesOut: bigint({ mode: "number" }).notNull().default(0),
    /** client_closed, host_closed, revoked, host_stopped, idle_timeout, proxy_shutdown, lost, error… */
    endReason: text(),
    recording: text({ enum: recordingModes }).notNull().default("off"),
    recordingBytes: integer().notNull().default(0),
    /** The recording hit SESSION_RECORDING_MAX_BYTES and stopped there (the session went on). */
    recordingTruncated: boolean().notNull().default(false),
  },
  (t) => [
    index("sessions_started_idx").on(t.startedAt.desc(), t.id.desc()),
    index("sessions_host_idx").on(t.hostId, t.startedAt.desc()),
    index("sessions_user_idx").on(t.userId, t.startedAt.desc()),
    index("sessions_open_idx").on(t.hostId).where(sql`${t.endedAt} is null`),
    check("sessions_kind_ck", sql`${t.kind} in ('ssh','desktop')`),
    check("sessions_recording_ck", sql`${t.recording} in ('off','output','input')`),
  ],
);

/** An asciicast v2 recording, appended in chunks as the session runs (text: asciicast is UTF-8 lines). */
export const sessionRecordingChunks = pgTable(
  "session_recording_chunks",
  {
    sessionId: uuid()
      .notNull()
      .references(() => sessions.id, { onDelete: "cascade" }),
    seq: integer().notNull(),
    data: text().notNull(),
  },
  (t) => [primaryKey({ columns: [t.sessionId, t.seq] })],
);

export type SessionRow = typeof sessions.$inferSelect;
