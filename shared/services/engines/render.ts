import { createHash, X509Certificate } from "node:crypto";
import { asc, eq, type SQL, sql } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.js";
import { engines, type EngineRow } from "../../db/schema/index.js";
import type { EngineView } from "./view.js";

/**
 * The health verdict (docs/api.md#engines) uses the same window as placement and the dead-engine
 * check: ENGINE_DEAD_AFTER_SECONDS (docs/engines.md#health). `ok` while a worker reached Docker
 * within it, `docker_down` while workers beat but Docker does not answer, `no_worker` otherwise.
 */
export function engineHealth(row: Pick<EngineRow, "lastSeenAt" | "lastHeartbeatAt">, now: Date, windowSeconds: number): EngineView["health"] {
  const fresh = (d: Date | null) => d !== null && now.getTime() - d.getTime() <= windowSeconds * 1000;
  if (fresh(row.lastSeenAt)) return "ok";
  if (fresh(row.lastHeartbeatAt)) return "docker_down";
  return "no_worker";
}

/** Lowercase hex SHA-256 of a certificate's DER; null when it does not parse (a row written by hand). */
export function certSha256(pem: string | null): string | null {
  if (!pem) return null;
  try {
    return createHash("sha256").update(new X509Certificate(pem).raw).digest("hex");
  } catch {
    return null;
  }
}

export interface EngineLoadRow {
  engine: EngineRow;
  hosts: number;
  runningHosts: number;
  poolMembers: number;
  usedMemoryMb: number;
  usedCpus: number;
}

/** Engines with what their hosts use and how many pool members they hold, by id. */
export async function loadEngineRows(db: DbOrTx, where?: SQL): Promise<EngineLoadRow[]> {
  // The outer row spelled out: in a select list drizzle renders a column unqualified (`"id"`),
  // which the subqueries would resolve to their own table's id.
  const rows = await db
    .select({
      engine: engines,
      hosts: sql<string>`(select count(*) from hosts h where h.engine_id = "engines"."id")`,
      runningHosts: sql<string>`(select count(*) from hosts h where h.engine_id = "engines"."id" and h.status = 'running')`,
      poolMembers: sql<string>`(select count(*) from host_pool p where p.engine_id = "engines"."id")`,
      usedMemoryMb: sql<string>`(select coalesce(sum(h.memory_limit_mb), 0) from hosts h where h.engine_id = "engines"."id")`,
      usedCpus: sql<string>`(select coalesce(sum(h.cpu_limit), 0) from hosts h where h.engine_id = "engines"."id")`,
    })
    .from(engines)
    .where(where)
    .orderBy(asc(engines.id));
  return rows.map((r) => ({
    engine: r.engine,
    hosts: Number(r.hosts),
    runningHosts: Number(r.runningHosts),
    poolMembers: Number(r.poolMembers),
    usedMemoryMb: Number(r.usedMemoryMb),
    usedCpus: Number(r.usedCpus),
  }));
}

export const loadEngineRow = async (db: DbOrTx, id: string): Promise<EngineLoadRow | undefined> =>
  (await loadEngineRows(db, eq(engines.id, id)))[0];

/** The engine object of docs/api.md#engines. Never the key: not even whether its ciphertext decrypts. */
export function renderEngine(r: EngineLoadRow, now: Date, windowSeconds: number): EngineView {
  const e = r.engine;
  const ca = certSha256(e.tlsCaPem);
  const cert = certSha256(e.tlsCertPem);
  return {
    id: e.id,
    endpoint: e.endpoint,
    state: e.state,
    health: engineHealth(e, now, windowSeconds),
    tls: ca || cert ? { ca_sha256: ca ?? "", cert_sha256: cert ?? "" } : null,
    capacity: { memory_mb: e.memoryMb, cpus: e.cpus == null ? null : Number(e.cpus), max_hosts: e.maxHosts },
    // cpus are numeric(…, 2): the float sum is rounded back to hundredths.
    usage: { memory_mb: r.usedMemoryMb, cpus: Math.round(r.usedCpus * 100) / 100 },
    counts: { hosts: r.hosts, running_hosts: r.runningHosts, pool_members: r.poolMembers },
    labels: e.labels ?? {},
    last_seen_at: e.lastSeenAt?.toISOString() ?? null,
    last_heartbeat_at: e.lastHeartbeatAt?.toISOString() ?? null,
    created_at: e.createdAt.toISOString(),
    updated_at: e.updatedAt.toISOString(),
  };
}
