import { z } from "zod";
import type { EngineState } from "../../../shared/db/schema/index.js";
import { setEngineState } from "../../../shared/services/engines/manage.js";
import { json } from "../../http/reply.js";
import { defineRoute } from "../../http/route.js";
import { jsonDoc, std } from "../docs.js";
import { engineDoc } from "./list.js";

/** A drain's moves (shared/services/hosts/move.ts): requested, and the hosts left where they are. */
const drainMovesDoc = z.object({
  requested: z.array(
    z.object({ host_id: z.string().uuid(), short_id: z.string(), task_id: z.string().uuid(), target_engine_id: z.string() }),
  ),
  skipped: z.array(z.object({ host_id: z.string().uuid(), short_id: z.string(), code: z.string(), message: z.string() })),
});

const stateRoute = (verb: "cordon" | "uncordon" | "drain", state: EngineState, summary: string) =>
  defineRoute({
    method: "post",
    path: `/v1/admin/engines/{engineId}/${verb}`,
    access: "admin",
    summary,
    tags: ["engines"],
    body: z.strictObject({}),
    bodyOptional: true,
    responses: {
      200:
        verb === "drain"
          ? jsonDoc("The engine, and the moves of its hosts", z.object({ engine: engineDoc, moves: drainMovesDoc }))
          : jsonDoc("The engine", z.object({ engine: engineDoc })),
      400: std[400],
      401: std[401],
      403: std[403],
      404: std[404],
    },
    handler: async ({ c, ctx, params }) => json(c, 200, await setEngineState({ ctx, engineId: params.engineId!, state })),
  });

export const cordonEngineRoute = stateRoute("cordon", "cordoned", "Cordon an engine: no new hosts are placed on it");
export const uncordonEngineRoute = stateRoute("uncordon", "active", "Make a cordoned or draining engine schedulable again");
export const drainEngineRoute = stateRoute("drain", "draining", "Drain an engine: no new placements; one host.move task per host of it");
