import Docker from "dockerode";
import { inArray } from "drizzle-orm";
import type { SecretBox } from "../shared/crypto/secrets.js";
import type { Db } from "../shared/db/client.js";
import { engines as enginesTable, hostPool, hosts, retainedVolumes, tasks, type EngineRow } from "../shared/db/schema/index.js";
import { connectionOf } from "./engine.js";
import { LABEL_HOST_ID, LABEL_INSTANCE, LABEL_MANAGED, LABEL_ROLE } from "./hosts/names.js";

/**
 * The consistency check (docs/operations.md#consistency-check, `admin consistency`): the database
 * against every engine, read-only. `compareConsistency` is the pure comparison; `checkConsistency`
 * reads the rows and lists each engine's labelled objects, then compares.
 */

/** A container or volume of this deployment (labelled with its instance) on one engine. */
export interface ListedObject {
  name: string;
  /** `cloud-cli-proxy.host_id`, null when absent (probes, egress-test gateways). */
  hostId: string | null;
  /** `cloud-cli-proxy.role`: gateway, host, home, probe, gwtest … */
  role: string | null;
  /** Containers only: whether it runs. Volumes: always false. */
  running: boolean;
}

export type EngineListing =
  | { engineId: string; reachable: true; containers: ListedObject[]; volumes: ListedObject[] }
  | { engineId: string; reachable: false; error: string };

export interface HostFacts {
  id: string;
  shortId: string;
  engineId: string;
  status: string;
  desiredState: string;
  /** A task of the host is running now: missing objects are work in progress (drift), not an error. */
  busy?: boolean;
}

export interface PoolFacts {
  id: string;
  shortId: string;
  engineId: string;
  state: string;
}

export interface ConsistencyInput {
  /** The engine ids checked (every engine row unless narrowed). */
  engineIds: string[];
  hosts: HostFacts[];
  pool: PoolFacts[];
  /** Home volumes kept by a delete with keep_home: never orphans. */
  retainedVolumes: string[];
  listings: EngineListing[];
}

export type ObjectKind = "gateway" | "host" | "home";
type Owner = "host" | "pool";

export interface OrphanFinding {
  object: "container" | "volume";
  name: string;
  host_id: string;
  role: string | null;
}
export interface MissingFinding {
  owner: Owner;
  id: string;
  short_id: string;
  status: string;
  objects: ObjectKind[];
}
export interface MisplacedFinding {
  owner: Owner;
  id: string;
  short_id: string;
  /** The engine the row names. */
  expected_engine: string;
  /** Objects found on this (another) engine. */
  objects: string[];
}
export interface DuplicateFinding {
  id: string;
  role: "gateway" | "host";
  containers: { engine_id: string; name: string }[];
}
export interface DriftFinding {
  owner: Owner;
  id: string;
  short_id: string;
  desired: string;
  status: string;
  observed: string;
}

export interface EngineReport {
  engine_id: string;
  reachable: boolean;
  error: string | null;
  /** Host rows placed on this engine whose status means their containers exist, and how many of them have both. */
  hosts: { rows: number; expected: number; found: number };
  pool_members: { rows: number; expected: number; found: number };
  containers: number;
  volumes: number;
  orphans: OrphanFinding[];
  missing: MissingFinding[];
  /** Objects on this engine that belong to a host or pool member placed on another engine. */
  misplaced: MisplacedFinding[];
  drift: DriftFinding[];
}

export interface ConsistencyReport {
  /** False when any orphan, missing object, misplaced object or duplicate exists. Drift and unreachable engines do not count. */
  ok: boolean;
  /** False when an engine could not be listed: its part of the comparison was skipped. */
  complete: boolean;
  instance: string;
  engines: EngineReport[];
  /** Two containers of one role for one id, on any engines (cluster-wide, not per engine). */
  duplicates: DuplicateFinding[];
  unreachable_engines: { engine_id: string; error: string }[];
  totals: {
    hosts: number;
    pool_members: number;
    orphans: number;
    missing: number;
    misplaced: number;
    duplicates: number;
    drift: number;
    unreachable_engines: number;
  };
}

/** Statuses in which both containers and the home exist (docs/operations.md#consistency-check). */
export const STATUSES_WITH_OBJECTS = new Set(["running", "stopped", "starting", "stopping", "rebuilding", "unreachable"]);
/** Containers of these roles are short-lived and own no host: the reconciler reaps them by age. */
const EPHEMERAL_ROLES = new Set(["probe", "gwtest"]);
const KINDS: ObjectKind[] = ["gateway", "host", "home"];

interface Seen {
  engineId: string;
  object: ListedObject;
  volume: boolean;
}

/** The pure comparison: rows against listings. Deterministic output order (by engine, then id, then name). */
export function compareConsistency(input: ConsistencyInput, instance = ""): ConsistencyReport {
  const hostById = new Map(input.hosts.map((h) => [h.id, h]));
  const poolById = new Map(input.pool.map((m) => [m.id, m]));
  const retained = new Set(input.retainedVolumes);
  const listingOf = new Map(input.listings.map((l) => [l.engineId, l]));
  const reachable = (engineId: string) => listingOf.get(engineId)?.reachable === true;

  // Every object that names a host id, by id, across all reachable engines.
  const byId = new Map<string, Seen[]>();
  for (const l of input.listings) {
    if (!l.reachable) continue;
    for (const [list, volume] of [[l.containers, false], [l.volumes, true]] as const) {
      for (const o of list) {
        if (!o.hostId) continue;
        const seen = byId.get(o.hostId) ?? [];
        seen.push({ engineId: l.engineId, object: o, volume });
        byId.set(o.hostId, seen);
      }
    }
  }
  const kindOf = (s: Seen): ObjectKind | null => {
    if (s.volume) return s.object.role === "home" ? "home" : null;
    return s.object.role === "gateway" || s.object.role === "host" ? s.object.role : null;
  };

  const reports = new Map<string, EngineReport>();
  for (const engineId of [...new Set([...input.engineIds, ...input.listings.map((l) => l.engineId)])].sort()) {
    const l = listingOf.get(engineId);
    reports.set(engineId, {
      engine_id: engineId,
      reachable: l?.reachable === true,
      error: !l ? "not listed" : l.reachable ? null : l.error,
      hosts: { rows: 0, expected: 0, found: 0 },
      pool_members: { rows: 0, expected: 0, found: 0 },
      containers: l?.reachable ? l.containers.length : 0,
      volumes: l?.reachable ? l.volumes.length : 0,
      orphans: [],
      missing: [],
      misplaced: [],
      drift: [],
    });
  }
  const reportOf = (engineId: string) => reports.get(engineId);

  // Orphans: labelled objects whose id is neither a host row nor a pool member.
  for (const l of input.listings) {
    if (!l.reachable) continue;
    const r = reportOf(l.engineId)!;
    for (const c of l.containers) {
      if (!c.hostId || EPHEMERAL_ROLES.has(c.role ?? "")) continue;
      if (!hostById.has(c.hostId) && !poolById.has(c.hostId)) r.orphans.push({ object: "container", name: c.name, host_id: c.hostId, role: c.role });
    }
    for (const v of l.volumes) {
      if (!v.hostId || retained.has(v.name)) continue;
      if (!hostById.has(v.hostId) && !poolById.has(v.hostId)) r.orphans.push({ object: "volume", name: v.name, host_id: v.hostId, role: v.role });
    }
  }

  // Duplicates: more than one gateway (or host) container for one id, wherever they are.
  const duplicates: DuplicateFinding[] = [];
  for (const [id, seen] of byId) {
    for (const role of ["gateway", "host"] as const) {
      const same = seen.filter((s) => !s.volume && s.object.role === role);
      if (same.length > 1) {
        duplicates.push({
          id,
          role,
          containers: same.map((s) => ({ engine_id: s.engineId, name: s.object.name })).sort((a, b) => a.engine_id.localeCompare(b.engine_id) || a.name.localeCompare(b.name)),
        });
      }
    }
  }
  duplicates.sort((a, b) => a.id.localeCompare(b.id) || a.role.localeCompare(b.role));

  const owners: { owner: Owner; id: string; shortId: string; engineId: string; status: string; desired: string; expectObjects: boolean; expectRunning: boolean | null; busy: boolean; checkMissing: boolean }[] = [];
  for (const h of input.hosts) {
    const expectObjects = STATUSES_WITH_OBJECTS.has(h.status);
    owners.push({
      owner: "host",
      id: h.id,
      shortId: h.shortId,
      engineId: h.engineId,
      status: h.status,
      desired: h.desiredState,
      expectObjects,
      // Only a settled host is held to its desired state; pending/creating/deleting/failed are in motion.
      expectRunning: h.desiredState === "running" ? true : h.desiredState === "stopped" ? false : null,
      busy: h.busy === true,
      checkMissing: expectObjects,
    });
  }
  for (const m of input.pool) {
    // A claimed member's objects are its host's from the claim on: the host row is checked instead.
    if (m.state === "claimed" && hostById.has(m.id)) continue;
    owners.push({
      owner: "pool",
      id: m.id,
      shortId: m.shortId,
      engineId: m.engineId,
      status: m.state,
      desired: "running",
      expectObjects: m.state === "ready",
      expectRunning: m.state === "ready" ? true : null,
      busy: false,
      checkMissing: m.state === "ready",
    });
  }

  for (const o of owners) {
    const r = reportOf(o.engineId);
    const seen = byId.get(o.id) ?? [];
    const here = seen.filter((s) => s.engineId === o.engineId);
    const counts = o.owner === "host" ? r?.hosts : r?.pool_members;
    if (counts) {
      counts.rows++;
      if (o.expectObjects) counts.expected++;
      if (o.expectObjects && here.some((s) => kindOf(s) === "gateway") && here.some((s) => kindOf(s) === "host")) counts.found++;
    }

    // Misplaced: objects of this id on an engine the row does not name (reported where they are).
    const elsewhere = new Map<string, string[]>();
    for (const s of seen) {
      if (s.engineId === o.engineId) continue;
      elsewhere.set(s.engineId, [...(elsewhere.get(s.engineId) ?? []), s.object.name]);
    }
    for (const [engineId, names] of elsewhere) {
      reportOf(engineId)?.misplaced.push({ owner: o.owner, id: o.id, short_id: o.shortId, expected_engine: o.engineId, objects: names.sort() });
    }

    if (!r || !reachable(o.engineId)) continue;
    const present = new Set(here.map(kindOf).filter((k): k is ObjectKind => k !== null));
    const absent = KINDS.filter((k) => !present.has(k));
    if (o.checkMissing && absent.length) {
      if (o.busy) {
        r.drift.push({ owner: o.owner, id: o.id, short_id: o.shortId, desired: o.desired, status: o.status, observed: `${absent.join(", ")} missing while a task of it runs` });
      } else {
        r.missing.push({ owner: o.owner, id: o.id, short_id: o.shortId, status: o.status, objects: absent });
      }
    }
    if (!o.expectObjects || o.busy) {
      if (o.owner === "host" && o.status === "failed" && o.desired === "running") {
        r.drift.push({ owner: o.owner, id: o.id, short_id: o.shortId, desired: o.desired, status: o.status, observed: "failed" });
      }
      continue;
    }
    const containers = here.filter((s) => !s.volume && (s.object.role === "gateway" || s.object.role === "host"));
    if (o.expectRunning === true) {
      const stopped = containers.filter((s) => !s.object.running).map((s) => s.object.role);
      if (stopped.length) {
        r.drift.push({ owner: o.owner, id: o.id, short_id: o.shortId, desired: o.desired, status: o.status, observed: `${[...new Set(stopped)].sort().join(", ")} container stopped` });
      }
    } else if (o.expectRunning === false && o.status !== "stopping") {
      const running = containers.filter((s) => s.object.running).map((s) => s.object.role);
      if (running.length) {
        r.drift.push({ owner: o.owner, id: o.id, short_id: o.shortId, desired: o.desired, status: o.status, observed: `${[...new Set(running)].sort().join(", ")} container running` });
      }
    }
    if (o.status === "unreachable") {
      r.drift.push({ owner: o.owner, id: o.id, short_id: o.shortId, desired: o.desired, status: o.status, observed: "marked unreachable but its engine answers" });
    }
  }

  const byIdThenName = <T extends { id?: string; host_id?: string; name?: string }>(a: T, b: T) =>
    (a.id ?? a.host_id ?? "").localeCompare(b.id ?? b.host_id ?? "") || (a.name ?? "").localeCompare(b.name ?? "");
  for (const r of reports.values()) {
    r.orphans.sort((a, b) => a.host_id.localeCompare(b.host_id) || a.object.localeCompare(b.object) || a.name.localeCompare(b.name));
    r.missing.sort(byIdThenName);
    r.misplaced.sort(byIdThenName);
    r.drift.sort(byIdThenName);
  }
  const engines = [...reports.values()];
  const sum = (f: (r: EngineReport) => number) => engines.reduce((n, r) => n + f(r), 0);
  const unreachable = engines.filter((r) => !r.reachable).map((r) => ({ engine_id: r.engine_id, error: r.error ?? "unreachable" }));
  const totals = {
    hosts: sum((r) => r.hosts.rows),
    pool_members: sum((r) => r.pool_members.rows),
    orphans: sum((r) => r.orphans.length),
    missing: sum((r) => r.missing.length),
    misplaced: sum((r) => r.misplaced.length),
    duplicates: duplicates.length,
    drift: sum((r) => r.drift.length),
    unreachable_engines: unreachable.length,
  };
  return {
    ok: totals.orphans + totals.missing + totals.misplaced + totals.duplicates === 0,
    complete: unreachable.length === 0,
    instance,
    engines,
    duplicates,
    unreachable_engines: unreachable,
    totals,
  };
}

/** How long one engine may take to list its objects before it counts as unreachable. */
export const ENGINE_LIST_TIMEOUT_MS = 15_000;

/** One engine's labelled containers and volumes of `instance`, over its row's connection (worker/engine.ts). */
export async function listEngine(row: EngineRow, secrets: SecretBox, instance: string, timeoutMs = ENGINE_LIST_TIMEOUT_MS): Promise<EngineListing> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const docker = new Docker({ ...connectionOf(row, secrets), timeout: timeoutMs });
    const filters = { label: [`${LABEL_MANAGED}=true`, `${LABEL_INSTANCE}=${instance}`] };
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    const [containers, volumes] = await Promise.race([Promise.all([docker.listContainers({ all: true, filters }), docker.listVolumes({ filters })]), timeout]);
    const labelled = (name: string, labels: Record<string, string> | null | undefined, running: boolean): ListedObject => ({
      name,
      hostId: labels?.[LABEL_HOST_ID] ?? null,
      role: labels?.[LABEL_ROLE] ?? null,
      running,
    });
    return {
      engineId: row.id,
      reachable: true,
      containers: containers.map((c) => labelled((c.Names[0] ?? c.Id).replace(/^\//, ""), c.Labels, c.State === "running")),
      volumes: (volumes.Volumes ?? []).map((v) => labelled(v.Name, v.Labels, false)),
    };
  } catch (err) {
    const e = err as { code?: string; message?: string; json?: { message?: string } };
    const detail = e?.json?.message ?? e?.message ?? String(err);
    return { engineId: row.id, reachable: false, error: e?.code && !detail.includes(e.code) ? `${e.code}: ${detail}` : detail };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The consistency check of the deployment `instance` (its REDIS_PREFIX): every engine row (or the
 * given ids), listed in parallel; an engine that does not answer is reported, never thrown.
 * Engines are listed before the rows are read, as the reconciler does, so a host created during
 * the check is known rather than an orphan.
 */
export async function checkConsistency(opts: {
  db: Db;
  secrets: SecretBox;
  instance: string;
  /** Only these engines (default: every engine row). */
  engines?: string[];
  timeoutMs?: number;
  /** Replaces the Docker listing (tests). */
  list?: (row: EngineRow) => Promise<EngineListing>;
}): Promise<ConsistencyReport> {
  const { db } = opts;
  const rows = await db.select().from(enginesTable).orderBy(enginesTable.id);
  const wanted = opts.engines ? rows.filter((r) => opts.engines!.includes(r.id)) : rows;
  const unknown = (opts.engines ?? []).filter((id) => !rows.some((r) => r.id === id));
  if (unknown.length) throw new UnknownEngineError(unknown);
  const list = opts.list ?? ((row: EngineRow) => listEngine(row, opts.secrets, opts.instance, opts.timeoutMs));
  const listings = await Promise.all(wanted.map(list));
  // Pool members before hosts, as the reconciler reads them: a claim in between is seen as its host.
  const members = await db
    .select({ id: hostPool.id, shortId: hostPool.shortId, engineId: hostPool.engineId, state: hostPool.state })
    .from(hostPool);
  const hostRows = await db
    .select({ id: hosts.id, shortId: hosts.shortId, engineId: hosts.engineId, status: hosts.status, desiredState: hosts.desiredState })
    .from(hosts);
  const running = await db.select({ hostId: tasks.hostId }).from(tasks).where(inArray(tasks.status, ["running"]));
  const busy = new Set(running.map((t) => t.hostId).filter(Boolean));
  const retained = await db.select({ name: retainedVolumes.volumeName }).from(retainedVolumes);
  return compareConsistency(
    {
      engineIds: wanted.map((r) => r.id),
      // Rows of engines outside the check still count as known ids (never orphans elsewhere).
      hosts: hostRows.map((h) => ({ ...h, busy: busy.has(h.id) })),
      pool: members,
      retainedVolumes: retained.map((r) => r.name),
      listings,
    },
    opts.instance,
  );
}

export class UnknownEngineError extends Error {
  constructor(readonly engineIds: string[]) {
    super(`no such engine: ${engineIds.join(", ")}`);
  }
}
