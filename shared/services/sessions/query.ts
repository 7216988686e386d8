import { and, asc, count, desc, eq, gt, gte, isNotNull, isNull, lt, type SQL, sql } from "drizzle-orm";
import type { Db } from "../../db/client.js";
import { hosts, sessionRecordingChunks, sessions, users } from "../../db/schema/index.js";
import { NotFound } from "../../errors.js";
import { isUuid } from "../../validation.js";
import type { ServiceContext } from "../context.js";
import type { ListSessionsQuery } from "./schemas.js";
import { renderSession, type SessionView } from "./view.js";

/** Another user's session is "not found" (docs/api.md#authorization): `ownerId` scopes every read. */
interface Scope {
  ownerId?: string;
}

const hasRecording = sql<boolean>`exists (select 1 from ${sessionRecordingChunks} where ${sessionRecordingChunks.sessionId} = ${sessions.id})`;

function selectSessions(db: Db) {
  return db
    .select({ row: sessions, username: users.username, hostShortId: hosts.shortId, hasRecording })
    .from(sessions)
    .leftJoin(users, eq(users.id, sessions.userId))
    .leftJoin(hosts, eq(hosts.id, sessions.hostId));
}

/** `GET /v1/admin/sessions`, `GET /v1/user/sessions` (docs/sessions.md#api): newest first. */
export async function listSessions({
  ctx,
  query,
  ownerId,
}: {
  ctx: ServiceContext;
  query: Omit<ListSessionsQuery, "user_id"> & { user_id?: string | undefined };
} & Scope) {
  const conds: SQL[] = [];
  if (ownerId !== undefined) conds.push(eq(sessions.userId, ownerId));
  if (query.user_id) conds.push(eq(sessions.userId, query.user_id));
  if (query.host_id) conds.push(eq(sessions.hostId, query.host_id));
  if (query.kind) conds.push(eq(sessions.kind, query.kind));
  if (query.since) conds.push(gte(sessions.startedAt, query.since));
  // Inclusive of its whole millisecond, as events' `until` (docs/api.md#events).
  if (query.until) conds.push(lt(sessions.startedAt, new Date(query.until.getTime() + 1)));
  if (query.open === true) conds.push(isNull(sessions.endedAt));
  if (query.open === false) conds.push(isNotNull(sessions.endedAt));
  if (query.recorded !== undefined) conds.push(query.recorded ? hasRecording : sql`not ${hasRecording}`);
  const where = conds.length ? and(...conds) : undefined;
  const rows = await selectSessions(ctx.db)
    .where(where)
    .orderBy(desc(sessions.startedAt), desc(sessions.id))
    .limit(query.limit)
    .offset(query.offset);
  const [counted] = await ctx.db.select({ total: count() }).from(sessions).where(where);
  const now = ctx.clock();
  return {
    sessions: rows.map((r) => renderSession(r.row, r, now, ownerId !== undefined)),
    total: counted?.total ?? 0,
    limit: query.limit,
    offset: query.offset,
  };
}

export async function getSession({ ctx, id, ownerId }: { ctx: ServiceContext; id: string } & Scope): Promise<{ session: SessionView }> {
  if (!isUuid(id)) throw NotFound("session_not_found", "session not found");
  const [r] = await selectSessions(ctx.db).where(eq(sessions.id, id.toLowerCase()));
  if (!r || (ownerId !== undefined && r.row.userId !== ownerId)) throw NotFound("session_not_found", "session not found");
  return { session: renderSession(r.row, r, ctx.clock(), ownerId !== undefined) };
}

/**
 * Chunks read per query while streaming a recording: one (~1 MiB) per pull, so a download holds
 * one chunk in memory however slow its reader and however many run.
 */
const CHUNKS_PER_READ = 1;

/**
 * `GET …/sessions/{id}/recording`: the .cast, streamed from its chunks in order (404
 * `recording_not_found` when none is stored). Ownership and existence are checked before the
 * answer starts; the body then pages through the chunks by `seq`.
 */
export async function openRecording({
  ctx,
  id,
  ownerId,
}: { ctx: ServiceContext; id: string } & Scope): Promise<{ sessionId: string; stream: ReadableStream<Uint8Array> }> {
  const { session } = await getSession({ ctx, id, ownerId });
  if (!session.has_recording) throw NotFound("recording_not_found", "this session has no recording");
  const db = ctx.db;
  let after = -1;
  const enc = new TextEncoder();
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const rows = await db
        .select({ seq: sessionRecordingChunks.seq, data: sessionRecordingChunks.data })
        .from(sessionRecordingChunks)
        .where(and(eq(sessionRecordingChunks.sessionId, session.id), gt(sessionRecordingChunks.seq, after)))
        .orderBy(asc(sessionRecordingChunks.seq))
        .limit(CHUNKS_PER_READ);
      if (rows.length === 0) return controller.close();
      for (const r of rows) controller.enqueue(enc.encode(r.data));
      after = rows[rows.length - 1]!.seq;
    },
  });
  return { sessionId: session.id, stream };
}
