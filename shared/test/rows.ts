import { randomBytes } from "node:crypto";
import type postgres from "postgres";

/**
 * Fixture rows inserted straight into a test database, for tables whose API does not exist yet
 * (or states only the worker can reach). Each helper returns the new row's id.
 */
type Sql = postgres.Sql;

let seq = 0;
const unique = () => `${Date.now().toString(36)}${(seq++).toString(36)}${randomBytes(3).toString("hex")}`;
/** `^[a-z0-9]{6}$`, the host short-id check constraint. */
const shortId = () => randomBytes(6).toString("hex").slice(0, 6);
/**
 * Timestamps and JSON travel as strings cast in SQL: drizzle makes the shared postgres-js client
 * pass timestamp and json values through untouched, so neither a Date nor an object would be
 * serialised for us.
 */
const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);

export async function insertUserRow(
  sql: Sql,
  opts: { status?: "active" | "disabled"; expiresAt?: Date | null; deletedAt?: Date | null; createdAt?: Date } = {},
): Promise<string> {
  const [row] = await sql<{ id: string }[]>`
    insert into users (username, role, status, expires_at, deleted_at, password_hash, created_at)
    values (${`fx${unique()}`}, 'user', ${opts.status ?? "active"}, ${iso(opts.expiresAt)}::timestamptz,
            ${iso(opts.deletedAt)}::timestamptz, 'not-a-real-hash', coalesce(${iso(opts.createdAt)}::timestamptz, now()))
    returning id`;
  return row!.id;
}

export type HostStatus =
  | "pending"
  | "creating"
  | "running"
  | "stopping"
  | "stopped"
  | "starting"
  | "rebuilding"
  | "failed"
  | "deleting";

/** A host (and, unless `userId` is given, an owner of its own: one host per user). */
export async function insertHostRow(
  sql: Sql,
  opts: { userId?: string; status?: HostStatus; desiredState?: "running" | "stopped" | "deleted" } = {},
): Promise<{ id: string; userId: string; shortId: string }> {
  const userId = opts.userId ?? (await insertUserRow(sql));
  const sid = shortId();
  const [row] = await sql<{ id: string }[]>`
    insert into hosts (user_id, short_id, status, desired_state, ssh_password_enc)
    values (${userId}, ${sid}, ${opts.status ?? "running"}, ${opts.desiredState ?? "running"}, 'v1:fixture')
    returning id`;
  return { id: row!.id, userId, shortId: sid };
}

let ipSeq = 0;
export async function insertEgressRow(
  sql: Sql,
  opts: { status?: "available" | "disabled"; health?: "unknown" | "passing" | "failing" } = {},
): Promise<string> {
  ipSeq++;
  const ip = `198.51.${Math.floor(ipSeq / 250) % 250}.${(ipSeq % 250) + 1}`;
  const [row] = await sql<{ id: string }[]>`
    insert into egress_ips (label, ip_address, tunnel_type, status, health)
    values (${`egress ${unique()}`}, ${ip}, 'proxy', ${opts.status ?? "available"}, ${opts.health ?? "unknown"})
    returning id`;
  return row!.id;
}

export async function insertBindingRow(sql: Sql, hostId: string, egressIpId: string): Promise<string> {
  const [row] = await sql<{ id: string }[]>`
    insert into host_egress_bindings (host_id, egress_ip_id) values (${hostId}, ${egressIpId}) returning id`;
  return row!.id;
}

export interface TaskRowInput {
  kind: string;
  status?: "pending" | "running" | "succeeded" | "failed" | "canceled";
  hostId?: string | null;
  egressIpId?: string | null;
  requestedBy?: string;
  attempt?: number;
  progressPercent?: number;
  progressMessage?: string | null;
  errorCode?: string | null;
  errorMessage?: string | null;
  cancelRequested?: boolean;
  result?: Record<string, unknown> | null;
  steps?: unknown[];
  createdAt?: Date;
  startedAt?: Date | null;
  finishedAt?: Date | null;
}

export async function insertTaskRow(sql: Sql, t: TaskRowInput): Promise<string> {
  const status = t.status ?? "pending";
  const [row] = await sql<{ id: string }[]>`
    insert into tasks (kind, status, host_id, egress_ip_id, requested_by, attempt, progress_percent,
                       progress_message, error_code, error_message, cancel_requested, result, steps,
                       created_at, started_at, finished_at)
    values (${t.kind}, ${status}, ${t.hostId ?? null}, ${t.egressIpId ?? null}, ${t.requestedBy ?? "system:reconcile"},
            ${t.attempt ?? (status === "pending" ? 0 : 1)}, ${t.progressPercent ?? 0}, ${t.progressMessage ?? null},
            ${t.errorCode ?? null}, ${t.errorMessage ?? null}, ${t.cancelRequested ?? false},
            ${t.result == null ? null : JSON.stringify(t.result)}::jsonb, ${JSON.stringify(t.steps ?? [])}::jsonb,
            coalesce(${iso(t.createdAt)}::timestamptz, now()), ${iso(t.startedAt)}::timestamptz, ${iso(t.finishedAt)}::timestamptz)
    returning id`;
  return row!.id;
}

export async function insertEventRow(
  sql: Sql,
  e: {
    type: string;
    level?: "info" | "warn" | "error";
    message?: string;
    actorId?: string | null;
    userId?: string | null;
    hostId?: string | null;
    taskId?: string | null;
    metadata?: Record<string, unknown>;
    /** A timestamptz literal, so microseconds can be given exactly (`2001-01-01T00:00:00.000500Z`). */
    createdAt: string;
  },
): Promise<string> {
  const [row] = await sql<{ id: string }[]>`
    insert into events (type, level, message, actor_id, user_id, host_id, task_id, metadata, created_at)
    values (${e.type}, ${e.level ?? "info"}, ${e.message ?? e.type}, ${e.actorId ?? null}, ${e.userId ?? null},
            ${e.hostId ?? null}, ${e.taskId ?? null}, ${JSON.stringify(e.metadata ?? {})}::jsonb, ${e.createdAt}::timestamptz)
    returning id`;
  return row!.id;
}
