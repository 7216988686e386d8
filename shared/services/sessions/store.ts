import { and, eq, inArray, isNotNull, isNull, lt } from "drizzle-orm";
import type { Redis } from "ioredis";
import type { Db } from "../../db/client.js";
import { sessionRecordingChunks, sessions } from "../../db/schema/index.js";
import type { Logger } from "../../logger.js";
import { redisKey } from "../../redis.js";

/**
 * Writing session records (docs/sessions.md): the SSH proxy and the desktop proxy insert a row
 * when a session opens and close it when it ends. Every write is off the relay's path: callers
 * fire and forget (errors logged), and closes wait for the open's insert.
 *
 * Liveness: a process that dies cannot close its rows. Each open session therefore has a Redis
 * key `<prefix>:session-live:<id>` that its process refreshes every LIVENESS_REFRESH_MS with a
 * TTL of LIVENESS_TTL_MS; the worker's sweeper closes open rows older than the TTL whose key is
 * gone (`end_reason` `lost`, `ended_at` the sweep's time). This works with any number of api and
 * sshd replicas, and needs no instance ids: a session is alive exactly while someone vouches for it.
 */
export const LIVENESS_TTL_MS = 90_000;
export const LIVENESS_REFRESH_MS = 30_000;

export const liveKey = (prefix: string, id: string) => redisKey(prefix, "session-live", id);

export interface OpenSessionInput {
  id: string;
  kind: "ssh" | "desktop";
  hostId: string;
  userId: string;
  login: string;
  method: string | null;
  sourceIp: string | null;
  recording: "off" | "output" | "input";
  startedAt: Date;
}

export interface SessionCounters {
  bytesIn: number;
  bytesOut: number;
}

export interface CloseSessionInput extends SessionCounters {
  endedAt: Date;
  endReason: string;
  recordingBytes?: number;
  recordingTruncated?: boolean;
}

interface Tracked {
  opened: Promise<boolean>;
  counters: () => SessionCounters;
  lastWritten: SessionCounters;
}

/**
 * One per process: opens, refreshes and closes this process's session rows. `close` is
 * idempotent per id; `stop` ends the refresh timer and waits for the writes in flight.
 */
export class SessionStore {
  private readonly tracked = new Map<string, Tracked>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly deps: { db: Db; redis: Redis; prefix: string; logger: Logger },
    private readonly refreshMs = LIVENESS_REFRESH_MS,
  ) {}

  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p)).catch(() => {});
    return p;
  }

  /** Insert the row (and its liveness key); resolves false when the insert failed. */
  open(input: OpenSessionInput, counters: () => SessionCounters): Promise<boolean> {
    const opened = this.track(
      (async () => {
        await this.deps.redis.set(liveKey(this.deps.prefix, input.id), "1", "PX", LIVENESS_TTL_MS).catch(() => {});
        await this.deps.db.insert(sessions).values({
          id: input.id,
          kind: input.kind,
          hostId: input.hostId,
          userId: input.userId,
          login: input.login.slice(0, 128),
          method: input.method,
          sourceIp: input.sourceIp,
          recording: input.recording,
          startedAt: input.startedAt,
        });
        return true;
      })().catch((err: unknown) => {
        this.deps.logger.warn({ err: (err as Error).message, session_id: input.id }, "session record not written");
        return false;
      }),
    );
    this.tracked.set(input.id, { opened, counters, lastWritten: { bytesIn: 0, bytesOut: 0 } });
    this.ensureTimer();
    return opened;
  }

  /** Store one recording chunk (after the row exists: the chunk's foreign key needs it). */
  async writeChunk(id: string, seq: number, data: string): Promise<void> {
    const t = this.tracked.get(id);
    if (t && !(await t.opened)) throw new Error("session row missing");
    // A real promise: a drizzle query is a thenable that runs again on every then().
    await this.track((async () => void (await this.deps.db.insert(sessionRecordingChunks).values({ sessionId: id, seq, data })))());
  }

  /** Close the row: ended_at, bytes, reason, recording totals. Only an open row is changed. */
  close(id: string, input: CloseSessionInput | Promise<CloseSessionInput>): Promise<void> {
    const t = this.tracked.get(id);
    this.tracked.delete(id);
    return this.track(
      (async () => {
        const v = await input;
        if (t && !(await t.opened)) return;
        await this.deps.db
          .update(sessions)
          .set({
            endedAt: v.endedAt,
            bytesIn: v.bytesIn,
            bytesOut: v.bytesOut,
            endReason: v.endReason,
            ...(v.recordingBytes !== undefined ? { recordingBytes: v.recordingBytes } : {}),
            ...(v.recordingTruncated !== undefined ? { recordingTruncated: v.recordingTruncated } : {}),
          })
          .where(and(eq(sessions.id, id), isNull(sessions.endedAt)));
        await this.deps.redis.del(liveKey(this.deps.prefix, id)).catch(() => {});
      })().catch((err: unknown) => {
        this.deps.logger.warn({ err: (err as Error).message, session_id: id }, "session record not closed");
      }),
    );
  }

  /** Keep this process's sessions alive in Redis and their byte counts current in Postgres. */
  async refresh(): Promise<void> {
    const entries = [...this.tracked.entries()];
    if (entries.length === 0) return;
    const pipe = this.deps.redis.pipeline();
    for (const [id] of entries) pipe.set(liveKey(this.deps.prefix, id), "1", "PX", LIVENESS_TTL_MS);
    await pipe.exec().catch(() => {});
    for (const [id, t] of entries) {
      const c = t.counters();
      if (c.bytesIn === t.lastWritten.bytesIn && c.bytesOut === t.lastWritten.bytesOut) continue;
      if (!(await t.opened)) continue;
      t.lastWritten = { ...c };
      await this.deps.db
        .update(sessions)
        .set({ bytesIn: c.bytesIn, bytesOut: c.bytesOut })
        .where(and(eq(sessions.id, id), isNull(sessions.endedAt)))
        .catch(() => {});
    }
  }

  private ensureTimer(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.refresh().catch(() => {}), this.refreshMs);
    this.timer.unref();
  }

  /** Stop refreshing and wait for every write in flight (shutdown). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    while (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
  }
}

/**
 * The sweeper's part (worker/schedulers/sweep.ts): open rows started more than LIVENESS_TTL_MS
 * ago whose liveness key is gone belong to a process that died; they end as `lost`.
 */
export async function closeLostSessions(db: Db, redis: Redis, prefix: string, now: Date): Promise<number> {
  const before = new Date(now.getTime() - LIVENESS_TTL_MS);
  const open = await db
    .select({ id: sessions.id })
    .from(sessions)
    .where(and(isNull(sessions.endedAt), lt(sessions.startedAt, before)))
    .limit(5000);
  if (open.length === 0) return 0;
  const alive = await redis.mget(...open.map((s) => liveKey(prefix, s.id)));
  const lost = open.filter((_, i) => alive[i] === null).map((s) => s.id);
  if (lost.length === 0) return 0;
  const closed = await db
    .update(sessions)
    .set({ endedAt: now, endReason: "lost" })
    .where(and(inArray(sessions.id, lost), isNull(sessions.endedAt)))
    .returning({ id: sessions.id });
  return closed.length;
}

/**
 * Retention (worker/schedulers/retention.ts, docs/sessions.md#retention): ended sessions older
 * than `sessionDays` go with their recordings; recordings of sessions that started more than
 * `recordingDays` ago go sooner (the row stays, `recording_bytes` 0 tells the recording is gone).
 */
export async function pruneSessions(db: Db, now: Date, opts: { sessionDays: number; recordingDays: number }) {
  const day = 86_400_000;
  const rows = await db
    .delete(sessions)
    .where(and(isNotNull(sessions.endedAt), lt(sessions.startedAt, new Date(now.getTime() - opts.sessionDays * day))))
    .returning({ id: sessions.id });
  const old = db
    .select({ id: sessions.id })
    .from(sessions)
    .where(and(isNotNull(sessions.endedAt), lt(sessions.startedAt, new Date(now.getTime() - opts.recordingDays * day))));
  const chunks = await db
    .delete(sessionRecordingChunks)
    .where(inArray(sessionRecordingChunks.sessionId, old))
    .returning({ id: sessionRecordingChunks.sessionId });
  const emptied = new Set(chunks.map((c) => c.id));
  if (emptied.size) await db.update(sessions).set({ recordingBytes: 0 }).where(inArray(sessions.id, [...emptied]));
  return { sessions: rows.length, recordings: emptied.size };
}
