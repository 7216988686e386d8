import type { TaskRow, TaskStep } from "../../db/schema/index.js";
import type { TaskView } from "../../views/index.js";

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** Only the four documented step keys leave the API, whatever else a worker stored. */
function renderStep(s: TaskStep): TaskView["steps"][number] {
  return {
    name: s.name,
    status: s.status,
    started_at: s.started_at ?? null,
    duration_ms: s.duration_ms ?? null,
  };
}

/** The task object of docs/api.md#task-object. The payload, origin and heartbeat stay internal. */
export function renderTask(t: TaskRow): TaskView {
  return {
    id: t.id,
    kind: t.kind,
    status: t.status,
    host_id: t.hostId,
    egress_ip_id: t.egressIpId,
    requested_by: t.requestedBy,
    request_id: t.requestId,
    attempt: t.attempt,
    progress_percent: t.progressPercent,
    progress_message: t.progressMessage,
    error_code: t.errorCode,
    error_message: t.errorMessage,
    cancel_requested: t.cancelRequested,
    result: (t.result ?? null) as TaskView["result"],
    created_at: t.createdAt.toISOString(),
    started_at: iso(t.startedAt),
    finished_at: iso(t.finishedAt),
    steps: (Array.isArray(t.steps) ? t.steps : []).map(renderStep),
  };
}
export type { TaskView };
