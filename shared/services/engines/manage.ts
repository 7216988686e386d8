import { isDeepStrictEqual } from "node:util";
import { count, eq } from "drizzle-orm";
import { secretAt } from "../../crypto/secrets.js";
import type { Tx } from "../../db/client.js";
import { type EngineRow, engineImages, engines, type EngineState, hostPool, hosts } from "../../db/schema/index.js";
import { isUniqueViolation } from "../../db/pg-errors.js";
import { Conflict, Invalid, NotFound } from "../../errors.js";
import type { ServiceContext } from "../context.js";
import { recordEvent } from "../events.js";
import { ENGINE_DEAD_AFTER_DEFAULT_SECONDS } from "./placement.js";
import { loadEngineRow, loadEngineRows, renderEngine } from "./render.js";
import { type AddEngineInput, checkTls, isEngineId, type ListEnginesQuery, PROTECTED_ENGINE_ID, type UpdateEngineInput } from "./schemas.js";
import type { EngineView } from "./view.js";
import { type DrainMoves, planDrainMoves } from "../hosts/move.js";

/**
 * Engine administration (docs/api.md#engines). The client key of a tcp engine is encrypted at rest,
 * bound to its row (secretAt.engine); it leaves the database only through worker/engine.ts. Responses
 * show certificate fingerprints, events name the changed fields, never a value of the TLS material.
 *
 * Every mutating verb locks the engine row first: placement (placement.ts) locks the schedulable
 * rows in the create transaction, so a cordon, drain or removal and a create never interleave.
 */

const ENGINE_NOT_FOUND = () => NotFound("engine_not_found", "engine not found");

async function lockEngine(tx: Tx, id: string): Promise<EngineRow> {
  if (!isEngineId(id)) throw ENGINE_NOT_FOUND();
  const [row] = await tx.select().from(engines).where(eq(engines.id, id)).for("update");
  if (!row) throw ENGINE_NOT_FOUND();
  return row;
}

async function rendered(tx: Tx, ctx: ServiceContext, id: string): Promise<EngineView> {
  const r = await loadEngineRow(tx, id);
  if (!r) throw ENGINE_NOT_FOUND();
  return renderEngine(r, ctx.clock(), ctx.engineDeadAfterSeconds ?? ENGINE_DEAD_AFTER_DEFAULT_SECONDS);
}

// ---------------------------------------------------------------------------------------------
// Read

/** `GET /v1/admin/engines` → `{engines}`, by id (a fleet is a handful of rows: no pagination). */
export async function listEngines({ ctx, query }: { ctx: ServiceContext; query: ListEnginesQuery }): Promise<{ engines: EngineView[] }> {
  const rows = await loadEngineRows(ctx.db, query.state ? eq(engines.state, query.state) : undefined);
  const now = ctx.clock();
  return { engines: rows.map((r) => renderEngine(r, now, ctx.engineDeadAfterSeconds ?? ENGINE_DEAD_AFTER_DEFAULT_SECONDS)) };
}

/** `GET /v1/admin/engines/{engineId}`; an id that cannot exist is simply not found. */
export async function getEngine({ ctx, engineId }: { ctx: ServiceContext; engineId: string }): Promise<{ engine: EngineView }> {
  if (!isEngineId(engineId)) throw ENGINE_NOT_FOUND();
  const r = await loadEngineRow(ctx.db, engineId);
  if (!r) throw ENGINE_NOT_FOUND();
  return { engine: renderEngine(r, ctx.clock(), ctx.engineDeadAfterSeconds ?? ENGINE_DEAD_AFTER_DEFAULT_SECONDS) };
}

// ---------------------------------------------------------------------------------------------
// Add

/** `POST /v1/admin/engines` → 201 `{engine}`; 409 `engine_exists`. */
export async function addEngine({ ctx, input }: { ctx: ServiceContext; input: AddEngineInput }): Promise<{ engine: EngineView }> {
  const { issues, tls } = checkTls(input.endpoint, input.tls);
  if (issues.length) throw Invalid(issues);
  try {
    return await ctx.db.transaction(async (tx) => {
      await tx.insert(engines).values({
        id: input.id,
        endpoint: input.endpoint,
        tlsCaPem: tls?.caPem ?? null,
        tlsCertPem: tls?.certPem ?? null,
        tlsKeyEnc: tls ? ctx.secrets.encrypt(tls.keyPem, secretAt.engine(input.id)) : null,
        memoryMb: input.memory_mb ?? null,
        cpus: input.cpus ?? null,
        maxHosts: input.max_hosts ?? null,
        labels: input.labels ?? {},
        state: "active",
      });
      await recordEvent(tx, {
        type: "engine.added",
        message: `engine ${input.id} added (${input.endpoint})`,
        actorId: ctx.actor?.id,
        metadata: {
          engine_id: input.id,
          endpoint: input.endpoint,
          tls: tls !== null,
          memory_mb: input.memory_mb ?? null,
          cpus: input.cpus ?? null,
          max_hosts: input.max_hosts ?? null,
          labels: input.labels ?? {},
        },
      });
      return { engine: await rendered(tx, ctx, input.id) };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw Conflict("engine_exists", `an engine named ${input.id} exists already`);
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Update

/**
 * `PATCH /v1/admin/engines/{engineId}` → 200 `{engine}`. Only fields present change; a request
 * that changes nothing writes nothing. A tcp endpoint keeps its TLS material unless `tls` is sent;
 * moving to unix:// drops it. Workers read their row at start: a new endpoint or TLS material
 * applies when the engine's workers restart (docs/api.md#engines).
 */
export async function updateEngine({ ctx, engineId, input }: { ctx: ServiceContext; engineId: string; input: UpdateEngineInput }) {
  return ctx.db.transaction(async (tx) => {
    const row = await lockEngine(tx, engineId);
    const patch: Partial<typeof engines.$inferInsert> = {};
    const changed: string[] = [];

    const endpoint = input.endpoint ?? row.endpoint;
    if (input.endpoint !== undefined || input.tls !== undefined) {
      const toTcp = endpoint.startsWith("tcp://");
      // Same tcp endpoint family, no new material: the stored material stays.
      const keepTls = toTcp && input.tls === undefined && row.endpoint.startsWith("tcp://") && row.tlsKeyEnc !== null;
      if (!keepTls) {
        const { issues, tls } = checkTls(endpoint, input.tls);
        if (issues.length) throw Invalid(issues);
        const next = {
          tlsCaPem: tls?.caPem ?? null,
          tlsCertPem: tls?.certPem ?? null,
        };
        const keyChanged = tls
          ? row.tlsKeyEnc === null || !sameKey(ctx, row, tls.keyPem)
          : row.tlsKeyEnc !== null;
        if (next.tlsCaPem !== row.tlsCaPem || next.tlsCertPem !== row.tlsCertPem || keyChanged) {
          patch.tlsCaPem = next.tlsCaPem;
          patch.tlsCertPem = next.tlsCertPem;
          patch.tlsKeyEnc = tls ? ctx.secrets.encrypt(tls.keyPem, secretAt.engine(row.id)) : null;
          changed.push("tls");
        }
      }
      if (endpoint !== row.endpoint) {
        patch.endpoint = endpoint;
        changed.push("endpoint");
      }
    }
    if (input.memory_mb !== undefined && input.memory_mb !== row.memoryMb) {
      patch.memoryMb = input.memory_mb;
      changed.push("memory_mb");
    }
    if (input.cpus !== undefined && input.cpus !== (row.cpus == null ? null : Number(row.cpus))) {
      patch.cpus = input.cpus;
      changed.push("cpus");
    }
    if (input.max_hosts !== undefined && input.max_hosts !== row.maxHosts) {
      patch.maxHosts = input.max_hosts;
      changed.push("max_hosts");
    }
    if (input.labels !== undefined && !isDeepStrictEqual(input.labels, row.labels ?? {})) {
      patch.labels = input.labels;
      changed.push("labels");
    }
    if (changed.length) {
      await tx.update(engines).set({ ...patch, updatedAt: ctx.clock() }).where(eq(engines.id, row.id));
      await recordEvent(tx, {
        type: "engine.updated",
        message: `engine ${row.id} updated (${changed.join(", ")})`,
        actorId: ctx.actor?.id,
        metadata: { engine_id: row.id, changed_fields: changed },
      });
    }
    return { engine: await rendered(tx, ctx, row.id) };
  });
}

/** Does the stored key equal this one? A key that does not decrypt in place counts as different. */
function sameKey(ctx: ServiceContext, row: EngineRow, keyPem: string): boolean {
  try {
    return ctx.secrets.decrypt(row.tlsKeyEnc!, secretAt.engine(row.id)) === keyPem;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Scheduling state

const STATE_EVENTS: Record<EngineState, { type: string; verb: string }> = {
  cordoned: { type: "engine.cordoned", verb: "cordoned: no new hosts are placed on it" },
  active: { type: "engine.uncordoned", verb: "uncordoned: schedulable again" },
  draining: { type: "engine.draining", verb: "draining: no new hosts are placed on it" },
};

/**
 * `POST /v1/admin/engines/{engineId}/cordon|uncordon|drain` → 200 `{engine}`. Placement only
 * considers `active` engines, so cordoned and draining ones get no new hosts; a cordoned engine's
 * hosts stay where they are. A drain also asks for one `host.move` per host of the engine (placed
 * among the other active engines, shared/services/hosts/move.ts) and answers `{engine, moves}`:
 * the moves requested and the hosts left (busy, or no room anywhere). Setting the state an engine
 * has already writes nothing, but a repeated drain asks again for the hosts still there.
 */
export async function setEngineState({
  ctx,
  engineId,
  state,
}: {
  ctx: ServiceContext;
  engineId: string;
  state: EngineState;
}): Promise<{ engine: EngineView; moves?: DrainMoves }> {
  const { result, tasks } = await ctx.db.transaction(async (tx) => {
    const row = await lockEngine(tx, engineId);
    if (row.state !== state) {
      await tx.update(engines).set({ state, updatedAt: ctx.clock() }).where(eq(engines.id, row.id));
      const e = STATE_EVENTS[state];
      await recordEvent(tx, {
        type: e.type,
        message: `engine ${row.id} ${e.verb}`,
        actorId: ctx.actor?.id,
        metadata: { engine_id: row.id, from: row.state, to: state },
      });
    }
    // After the state change, in the same transaction: the draining engine is no longer a target.
    const drain = state === "draining" ? await planDrainMoves(tx, ctx, row.id) : null;
    return {
      result: { engine: await rendered(tx, ctx, row.id), ...(drain ? { moves: drain.moves } : {}) },
      tasks: drain?.tasks ?? [],
    };
  });
  for (const t of tasks) await ctx.enqueue(t);
  return result;
}

// ---------------------------------------------------------------------------------------------
// Remove

/** `DELETE /v1/admin/engines/{engineId}` → 204; 409 `engine_protected` (default), `engine_in_use` (hosts or pool members on it). */
export async function removeEngine({ ctx, engineId }: { ctx: ServiceContext; engineId: string }): Promise<void> {
  if (engineId === PROTECTED_ENGINE_ID) throw Conflict("engine_protected", "the default engine cannot be removed");
  await ctx.db.transaction(async (tx) => {
    // Placement locks the row before inserting a host on it: after this lock no host can appear.
    const row = await lockEngine(tx, engineId);
    const [h] = await tx.select({ n: count() }).from(hosts).where(eq(hosts.engineId, row.id));
    const [p] = await tx.select({ n: count() }).from(hostPool).where(eq(hostPool.engineId, row.id));
    if ((h?.n ?? 0) > 0 || (p?.n ?? 0) > 0) {
      throw Conflict(
        "engine_in_use",
        `engine ${row.id} still has ${h?.n ?? 0} host(s) and ${p?.n ?? 0} pool member(s); cordon or drain it and move or delete them first`,
      );
    }
    await tx.delete(engineImages).where(eq(engineImages.engineId, row.id));
    await tx.delete(engines).where(eq(engines.id, row.id));
    await recordEvent(tx, {
      type: "engine.removed",
      message: `engine ${row.id} removed`,
      actorId: ctx.actor?.id,
      metadata: { engine_id: row.id, endpoint: row.endpoint },
    });
  });
}
