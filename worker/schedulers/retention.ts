import { and, inArray, lt } from "drizzle-orm";
import { egressAttestations, events, tasks } from "../../shared/db/schema/index.js";
import { recordEvent } from "../../shared/services/events.js";
import { pruneSessions } from "../../shared/services/sessions/store.js";
import type { WorkerDeps } from "../deps.js";

/** Daily: prune terminal tasks and events past their retention (docs/architecture.md#schedulers). */
export async function runRetention(deps: WorkerDeps): Promise<{ tasks: number; events: number; attestations: number; sessions: number; recordings: number }> {
  const now = deps.clock().getTime();
  const day = 86_400_000;
  const t = await deps.db
    .delete(tasks)
    .where(
      and(
        inArray(tasks.status, ["succeeded", "failed", "canceled"]),
        lt(tasks.createdAt, new Date(now - deps.config.TASK_RETENTION_DAYS * day)),
      ),
    )
    .returning({ id: tasks.id });
  const e = await deps.db
    .delete(events)
    .where(lt(events.createdAt, new Date(now - deps.config.EVENT_RETENTION_DAYS * day)))
    .returning({ id: events.id });
  // The attestation history (docs/egress.md#attestation) has its own, usually shorter, retention.
  const attested = await deps.db
    .delete(egressAttestations)
    .where(lt(egressAttestations.attestedAt, new Date(now - deps.config.EGRESS_ATTEST_RETENTION_DAYS * day)))
    .returning({ id: egressAttestations.id });
  // Session records and, sooner, their recordings (docs/sessions.md#retention).
  const s = await pruneSessions(deps.db, deps.clock(), {
    sessionDays: deps.config.SESSION_RETENTION_DAYS,
    recordingDays: deps.config.SESSION_RECORDING_RETENTION_DAYS,
  });
  if (t.length || e.length) {
    await recordEvent(deps.db, {
      type: "retention.pruned",
      message: `pruned ${t.length} tasks and ${e.length} events`,
      metadata: { tasks: t.length, events: e.length },
    });
  }
  if (s.sessions || s.recordings) {
    await recordEvent(deps.db, {
      type: "retention.pruned",
      message: `pruned ${s.sessions} sessions and ${s.recordings} recordings`,
      metadata: { sessions: s.sessions, recordings: s.recordings },
    });
  }
  return { tasks: t.length, events: e.length, attestations: attested.length, sessions: s.sessions, recordings: s.recordings };
}
