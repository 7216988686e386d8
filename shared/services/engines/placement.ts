import { sql } from "drizzle-orm";
import type { Tx } from "../../db/client.js";
import { Conflict } from "../../errors.js";

/** ENGINE_DEAD_AFTER_SECONDS's default: 6 missed heartbeats at the default 5 s interval. */
export const ENGINE_DEAD_AFTER_DEFAULT_SECONDS = 30;

/** How a create chooses among the engines that fit (docs/engines.md#placement). */
export type PlacementStrategy = "spread" | "pack";

export interface PlacementRequest {
  memoryMb: number;
  cpus: number;
  /** Every label must be on the engine with this value. */
  selector: Record<string, string>;
  strategy: PlacementStrategy;
  /** ENGINE_DEAD_AFTER_SECONDS: an engine not seen for this long is placed on only when no live one fits. */
  deadAfterSeconds: number;
}

/** One schedulable engine: its declared capacity (null = not limited) and what its hosts use. */
export interface EngineLoad {
  id: string;
  memoryMb: number | null;
  cpus: number | null;
  maxHosts: number | null;
  usedMemoryMb: number;
  usedCpus: number;
  hosts: number;
  /** Seen by a worker within ENGINE_DEAD_AFTER_SECONDS, or never seen yet (its worker may be starting). */
  live: boolean;
}

/** The fraction of an engine still free after placing `want` on it: the tightest of its limited axes (1 when nothing is limited). */
function freeAfter(e: EngineLoad, want: { memoryMb: number; cpus: number }): number {
  const axes: number[] = [];
  if (e.memoryMb != null) axes.push((e.memoryMb - e.usedMemoryMb - want.memoryMb) / e.memoryMb);
  if (e.cpus != null) axes.push((e.cpus - e.usedCpus - want.cpus) / e.cpus);
  if (e.maxHosts != null) axes.push(e.maxHosts === 0 ? -1 : (e.maxHosts - e.hosts - 1) / e.maxHosts);
  return axes.length ? Math.min(...axes) : 1;
}

/**
 * The engines a host of this shape fits on, best first (pure; docs/engines.md#placement). Live
 * engines come before silent ones: a create lands on an engine that stopped answering only when
 * nothing else fits (one engine briefly down then queues the create instead of refusing it).
 * spread: the most room left after placing (ties: fewest hosts, then id), so a fleet fills evenly;
 * pack: the least room left that still fits (ties: most hosts, then id), so whole engines stay free.
 */
export function rankEngines(loads: EngineLoad[], want: { memoryMb: number; cpus: number; strategy: PlacementStrategy }): string[] {
  const fits = loads
    .map((e) => ({ e, free: freeAfter(e, want) }))
    // A tiny tolerance: cpus are numeric(…, 2), sums of them are floats.
    .filter(({ free }) => free >= -1e-9);
  const dir = want.strategy === "spread" ? -1 : 1;
  // dir -1 (spread): most free first, then fewest hosts; dir 1 (pack): least free first, then most hosts.
  fits.sort((a, b) => Number(b.e.live) - Number(a.e.live) || dir * (a.free - b.free) || -dir * (a.e.hosts - b.e.hosts) || a.e.id.localeCompare(b.e.id));
  return fits.map(({ e }) => e.id);
}

/**
 * What the engines `ids` hold, for ranking (one query for creates and moves alike): their declared
 * capacity, and the hosts on them plus the hosts with an unfinished move to them (a drain's moves,
 * placed one after another in one transaction, and moves still copying, must not let a create or
 * another move overfill the target). `live`: seen within `deadAfterSeconds`, or never seen yet.
 */
export async function loadEngines(tx: Tx, ids: string[], deadAfterSeconds: number): Promise<EngineLoad[]> {
  const rows = await tx.execute<{
    id: string;
    memory_mb: number | null;
    cpus: string | null;
    max_hosts: number | null;
    used_memory_mb: string;
    used_cpus: string;
    hosts: string;
    live: boolean;
  }>(sql`
    select e.id, e.memory_mb, e.cpus, e.max_hosts,
           coalesce(e.last_seen_at > now() - make_interval(secs => ${deadAfterSeconds}), true) as live,
           coalesce(sum(h.memory_limit_mb), 0) as used_memory_mb,
           coalesce(sum(h.cpu_limit), 0) as used_cpus,
           count(h.id) as hosts
      from engines e
      left join hosts h on h.engine_id = e.id
        or h.id in (select t.host_id from tasks t
                     where t.kind = 'host.move' and t.status in ('pending', 'running')
                       and t.payload->>'target_engine_id' = e.id)
     where e.id in ${ids}
     group by e.id`);
  return [...rows].map((r) => ({
    id: r.id,
    memoryMb: r.memory_mb,
    cpus: r.cpus == null ? null : Number(r.cpus),
    maxHosts: r.max_hosts,
    usedMemoryMb: Number(r.used_memory_mb),
    usedCpus: Number(r.used_cpus),
    hosts: Number(r.hosts),
    live: r.live,
  }));
}

/**
 * Inside the create transaction: lock the schedulable engines that match the selector (so
 * concurrent creates place one after another and cannot overfill an engine), read what their
 * hosts use, and rank them. Throws 409 `no_capacity` when none fits.
 *
 * Every host row on an engine counts, whatever its status (a stopped host starts again in the
 * same room; a host being deleted still holds its place until it is gone).
 */
export async function placeHost(tx: Tx, req: PlacementRequest): Promise<{ ranked: string[]; live: string[] }> {
  const selector = JSON.stringify(req.selector);
  // Locked in id order: two creates never wait on each other's rows in opposite orders.
  const locked = await tx.execute<{ id: string }>(sql`
    select id from engines where state = 'active' and labels @> ${selector}::jsonb order by id for update`);
  const ids = [...locked].map((r) => r.id);
  if (!ids.length) throw noCapacity(req);
  const loads = await loadEngines(tx, ids, req.deadAfterSeconds);
  const ranked = rankEngines(loads, { memoryMb: req.memoryMb, cpus: req.cpus, strategy: req.strategy });
  if (!ranked.length) throw noCapacity(req);
  const live = new Set(loads.filter((e) => e.live).map((e) => e.id));
  return { ranked, live: ranked.filter((id) => live.has(id)) };
}

function noCapacity(req: PlacementRequest) {
  const sel = Object.entries(req.selector).map(([k, v]) => `${k}=${v}`).join(",");
  return Conflict(
    "no_capacity",
    `no schedulable engine${sel ? ` matching ${sel}` : ""} has room for ${req.memoryMb} MiB and ${req.cpus} CPUs`,
  );
}
