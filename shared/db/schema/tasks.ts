import { sql } from "drizzle-orm";
import { boolean, check, index, integer, jsonb, pgTable, text, uuid } from "drizzle-orm/pg-core";
import { createdAt, id, ts } from "./columns.js";

export const taskStatuses = ["pending", "running", "succeeded", "failed", "canceled"] as const;
export const taskOrigins = ["api", "bootstrap", "entry", "system"] as const;

export interface TaskStep {
  name: string;
  status: "pending" | "running" | "succeeded" | "failed" | "skipped";
  started_at: string | null;
  duration_ms: number | null;
}

/**
 * Postgres owns the truth about asynchronous work; BullMQ only delivers (docs/architecture.md#tasks).
 * host_id / egress_ip_id have no foreign keys: a task outlives the host it deleted.
 */
export const tasks = pgTable(
  "tasks",
  {
    id: id(),
    kind: text().notNull(),
    status: text({ enum: taskStatuses }).notNull().default("pending"),
    hostId: uuid(),
    egressIpId: uuid(),
    /**
     * The engine whose queue carries the task (docs/engines.md#queues): a host task's host's engine
     * when the task was created; null for tasks any worker may run (egress tests, schedulers).
     */
    engineId: text(),
    /** A user id, or `system:<reason>`. */
    requestedBy: text().notNull(),
    origin: text({ enum: taskOrigins }).notNull().default("api"),
    /** The X-Request-Id of the HTTP request that created the task (null for system tasks). */
    requestId: text(),
    /** Job payload extras (e.g. rebuild mode, keep_home); ids only, never secrets. */
    payload: jsonb().notNull().default({}),
    attempt: integer().notNull().default(0),
    progressPercent: integer().notNull().default(0),
    progressMessage: text(),
    errorCode: text(),
    errorMessage: text(),
    cancelRequested: boolean().notNull().default(false),
    result: jsonb(),
    steps: jsonb().$type<TaskStep[]>().notNull().default([]),
    heartbeatAt: ts(),
    /** Set once when the bootstrap handoff ticket was minted (single issue, docs/api.md#bootstrap). */
    handoffIssuedAt: ts(),
    createdAt: createdAt(),
    startedAt: ts(),
    finishedAt: ts(),
  },
  (t) => [
    index("tasks_created_at_idx").on(t.createdAt.desc(), t.id.desc()),
    index("tasks_host_idx").on(t.hostId, t.createdAt),
    index("tasks_status_idx").on(t.status),
    index("tasks_egress_idx").on(t.egressIpId),
    check("tasks_status_ck", sql`${t.status} in ('pending','running','succeeded','failed','canceled')`),
    check("tasks_progress_ck", sql`${t.progressPercent} between 0 and 100`),
  ],
);

export type TaskRow = typeof tasks.$inferSelect;
