import { and, asc, eq, gte, inArray, isNotNull, like, lt, or, sql, type SQL } from "drizzle-orm";
import { events, webhookDeliveries, webhooks } from "../../shared/db/schema/index.js";
import { eventTypeMatches } from "../../shared/services/webhooks/match.js";
import type { WorkerDeps } from "../deps.js";

/**
 * The webhook dispatcher (docs/api.md#webhooks-delivery): every WEBHOOK_DISPATCH_INTERVAL_MS, read
 * the events written since the last run, add one `webhook_deliveries` row per (enabled webhook
 * whose event_types match, event), then queue a delivery job for every delivery not tried yet.
 *
 * Why a scan of the events table rather than a hook in recordEvent: events are written by ~40
 * call sites in three processes (api, worker, sshd), inside the transactions of the changes they
 * record. A scan needs none of them to know about webhooks, adds nothing to their transactions
 * (sshd writes events under brute-force floods), sees only committed events (a rolled-back change
 * delivers nothing), and its progress lives in one place. The cost is latency: up to one interval.
 *
 * Correctness of the cursor. An event's created_at is its transaction's start (now()), and it
 * becomes visible only at commit, so "created_at < the last scan's time" does not mean "already
 * seen". Each run therefore scans only up to a horizon that no open writing transaction can still
 * insert below: the start of the oldest transaction of this database that holds a transaction id
 * (pg_stat_activity.backend_xid: it has written something). A transaction that has not written
 * anything yet when the horizon is taken is covered by re-reading the last RESCAN_MS below the
 * cursor on every run; the delivery log itself makes re-reading harmless: a (webhook, event) pair
 * that has a row is never added twice. Runs are serialised by a transaction-scoped advisory lock.
 * The cursor is kept in Redis: if it is lost, the last FALLBACK_MS are examined again (again
 * without repeating a delivery). A webhook only receives events created after it was.
 */

/** Re-read below the cursor each run: a transaction's first write within this of its start is never missed. */
const RESCAN_MS = 60_000;
/** Where a lost cursor restarts. */
const FALLBACK_MS = 24 * 3600_000;
const BATCH = 500;
/** Events examined per run at most; the rest waits for the next run (a backlog after an outage). */
const MAX_BATCHES = 20;
/** Deliveries (re)queued per run at most. */
const MAX_QUEUED = 500;
/** A pending delivery whose retry is this late lost its job (Redis restarted without its data): queued again. */
const LOST_RETRY_MS = 5 * 60_000;
const LOCK_KEY = "ccp:webhooks:dispatch";

export const dispatchCursorKey = (prefix: string) => `${prefix}:webhooks:cursor`;

/** Where the next run starts: `at` (timestamptz text), and `id` when a run stopped mid-way at MAX_BATCHES. */
interface Cursor {
  at: string;
  id: string | null;
}

function parseCursor(raw: string | null): Cursor | null {
  if (!raw) return null;
  try {
    const c = JSON.parse(raw) as Partial<Cursor>;
    return typeof c.at === "string" ? { at: c.at, id: typeof c.id === "string" ? c.id : null } : null;
  } catch {
    return null; // unreadable: as if lost
  }
}

/** The delivery log is kept as long as the events it points to (EVENT_RETENTION_DAYS), pruned hourly. */
const PRUNE_EVERY_MS = 3600_000;
const PRUNE_BATCH = 10_000;
let lastPrune = 0;

async function pruneDeliveries(deps: WorkerDeps): Promise<number> {
  const now = deps.clock().getTime();
  if (now - lastPrune < PRUNE_EVERY_MS) return 0;
  lastPrune = now;
  const cutoff = new Date(now - deps.config.EVENT_RETENTION_DAYS * 86_400_000).toISOString();
  try {
    const gone = await deps.db.execute<{ id: string }>(sql`
      delete from ${webhookDeliveries} where ${webhookDeliveries.id} in (
        select ${webhookDeliveries.id} from ${webhookDeliveries}
        where ${webhookDeliveries.createdAt} < ${cutoff}::timestamptz and ${webhookDeliveries.status} <> 'pending' limit ${PRUNE_BATCH})
      returning ${webhookDeliveries.id}`);
    return gone.length;
  } catch (err) {
    // Housekeeping only: dispatching goes on, the next hour tries again.
    deps.logger.warn({ err: (err as Error).message }, "could not prune the webhook delivery log");
    return 0;
  }
}

export async function runWebhookDispatch(deps: WorkerDeps): Promise<{ deliveries: number; queued: number; pruned: number }> {
  const pruned = await pruneDeliveries(deps);
  const cursorKey = dispatchCursorKey(deps.config.REDIS_PREFIX);
  const run = await deps.db.transaction(async (tx) => {
    // One run at a time, and a run that finds another under way skips instead of waiting on a
    // database connection (runs are queued every interval; waiting ones would fill the pool).
    const [locked] = await tx.execute<{ ok: boolean }>(sql`select pg_try_advisory_xact_lock(hashtext(${LOCK_KEY})) as ok`);
    if (!locked?.ok) return null;
    // Read under the lock: the cursor the previous run left.
    const stored = parseCursor(await deps.redis.get(cursorKey));
    const [h] = await tx.execute<{ horizon: string; fallback: string }>(sql`
      select least(now(), coalesce((select min(xact_start) from pg_stat_activity
                                    where datname = current_database() and pid <> pg_backend_pid()
                                      and backend_xid is not null and xact_start is not null), now()))::text as horizon,
             (now() - make_interval(secs => ${FALLBACK_MS / 1000}))::text as fallback`);
    const horizon = h!.horizon;
    const hooks = await tx
      .select({ id: webhooks.id, eventTypes: webhooks.eventTypes, createdAt: webhooks.createdAt })
      .from(webhooks)
      .where(eq(webhooks.enabled, true));
    if (hooks.length === 0) return { cursor: { at: horizon, id: null } as Cursor, deliveries: 0 };
    const patterns = [...new Set(hooks.flatMap((w) => w.eventTypes))];
    // Only the events some webhook wants are read (`*`: all of them).
    const typeCond: SQL | undefined = patterns.includes("*")
      ? undefined
      : or(...patterns.map((p) => (p.endsWith(".*") ? like(events.type, `${p.slice(0, -1).replace(/[\\%_]/g, (c) => `\\${c}`)}%`) : eq(events.type, p))));
    const oldestHook = new Date(Math.min(...hooks.map((w) => w.createdAt.getTime())));
    // After a run that stopped at MAX_BATCHES, carry on strictly after its last event (re-reading
    // the window there could read the same full batches forever in a burst); else from the last
    // horizon, minus the re-read window.
    const resume = stored?.id ? { at: stored.at, id: stored.id } : null;
    const start = resume
      ? sql`${resume.at}::timestamptz`
      : sql`(${stored?.at ?? h!.fallback}::timestamptz - make_interval(secs => ${RESCAN_MS / 1000}))`;
    let after: { at: string; id: string } | null = resume;
    let cursor: Cursor = { at: horizon, id: null };
    let deliveries = 0;
    for (let batch = 0; ; batch++) {
      if (batch === MAX_BATCHES) {
        cursor = { at: after!.at, id: after!.id }; // resume here next run
        break;
      }
      const rows: { id: string; type: string; createdAt: Date; at: string }[] = await tx
        .select({ id: events.id, type: events.type, createdAt: events.createdAt, at: sql<string>`${events.createdAt}::text` })
        .from(events)
        .where(
          and(
            gte(events.createdAt, start),
            gte(events.createdAt, oldestHook),
            lt(events.createdAt, sql`${horizon}::timestamptz`),
            typeCond,
            after ? sql`(${events.createdAt}, ${events.id}) > (${after.at}::timestamptz, ${after.id}::uuid)` : undefined,
          ),
        )
        .orderBy(asc(events.createdAt), asc(events.id))
        .limit(BATCH);
      const pairs = rows.flatMap((e) =>
        hooks
          .filter((w) => e.createdAt.getTime() >= w.createdAt.getTime() && eventTypeMatches(w.eventTypes, e.type))
          .map((w) => ({ webhookId: w.id, eventId: e.id, eventType: e.type })),
      );
      if (pairs.length) {
        const existing = await tx
          .select({ webhookId: webhookDeliveries.webhookId, eventId: webhookDeliveries.eventId })
          .from(webhookDeliveries)
          .where(inArray(webhookDeliveries.eventId, [...new Set(pairs.map((p) => p.eventId))]));
        const seen = new Set(existing.map((d) => `${d.webhookId}/${d.eventId}`));
        const fresh = pairs.filter((p) => !seen.has(`${p.webhookId}/${p.eventId}`));
        if (fresh.length) {
          await tx.insert(webhookDeliveries).values(fresh);
          deliveries += fresh.length;
        }
      }
      if (rows.length < BATCH) break;
      const last = rows[rows.length - 1]!;
      after = { at: last.at, id: last.id };
    }
    return { cursor, deliveries };
  });
  if (!run) return { deliveries: 0, queued: 0, pruned };
  await deps.redis.set(cursorKey, JSON.stringify(run.cursor));

  // Queue every delivery not tried yet (new ones, and the test events of POST …/test), and the
  // retries whose job was lost. Job id = delivery id: a delivery whose job exists is not queued twice.
  const due = await deps.db
    .select({ id: webhookDeliveries.id })
    .from(webhookDeliveries)
    .where(
      and(
        eq(webhookDeliveries.status, "pending"),
        or(
          eq(webhookDeliveries.attempts, 0),
          and(isNotNull(webhookDeliveries.nextAttemptAt), lt(webhookDeliveries.nextAttemptAt, new Date(deps.clock().getTime() - LOST_RETRY_MS))),
        ),
      ),
    )
    .orderBy(asc(webhookDeliveries.createdAt))
    .limit(MAX_QUEUED);
  for (const d of due) {
    await deps.queues.add(
      "system.webhook-deliver",
      { deliveryId: d.id },
      {
        jobId: d.id,
        attempts: deps.config.WEBHOOK_MAX_ATTEMPTS,
        backoff: { type: "exponential", delay: deps.config.WEBHOOK_RETRY_BASE_MS },
      },
    );
  }
  return { deliveries: run.deliveries, queued: due.length, pruned };
}
