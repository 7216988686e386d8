import { z } from "zod";
import { createHost } from "../../../shared/services/hosts/create.js";
import { getHostDetail } from "../../../shared/services/hosts/detail.js";
import {
  deleteHost,
  requestHostLifecycle,
  rotateHostSshPassword,
} from "../../../shared/services/hosts/lifecycle.js";
import { requestHostMove } from "../../../shared/services/hosts/move.js";
import { listHostsJson } from "../../../shared/services/hosts/list.js";
import { rebuildOutdatedHosts } from "../../../shared/services/hosts/rebuild-outdated.js";
import { createHostInput, deleteHostQuery, listHostsQuery, rebuildInput } from "../../../shared/services/hosts/schemas.js";
import { json, jsonBytes } from "../../http/reply.js";
import { type AnyRoute, defineRoute } from "../../http/route.js";
import { jsonDoc, listDoc, std, throttledDoc } from "../docs.js";
import { hostAdminDetailView, hostAdminView } from "../../../shared/views/index.js";
import { accessSettings } from "./access-settings.js";

const hostDoc = hostAdminView;
const taskIdDoc = z.object({ task_id: z.string().uuid() });
const tags = ["hosts"];

export const createHostRoute = defineRoute({
  method: "post",
  path: "/v1/admin/hosts",
  access: "admin",
  summary: "Create a host for a user (asynchronous: a host.create task)",
  tags,
  body: createHostInput,
  responses: { 202: jsonDoc("Accepted", z.object({ host: hostDoc, task_id: z.string() })), 400: std[400], 401: std[401], 403: std[403], 404: std[404], 409: std[409] },
  handler: async ({ c, ctx, body }) => json(c, 202, await createHost({ ctx, input: body })),
});

export const listHostsRoute = defineRoute({
  method: "get",
  path: "/v1/admin/hosts",
  access: "admin",
  summary: "List hosts",
  tags,
  query: listHostsQuery,
  responses: { 200: jsonDoc("Hosts", listDoc("hosts", hostDoc)), 400: std[400], 401: std[401], 403: std[403] },
  // Served from the stamped cache when the rows are unchanged (docs/architecture.md#read-paths).
  handler: async ({ c, ctx, deps, query }) => jsonBytes(c, 200, await listHostsJson({ ctx, query, cache: deps.hostListCache })),
});

export const getHostRoute = defineRoute({
  method: "get",
  path: "/v1/admin/hosts/{hostID}",
  access: "admin",
  summary: "Get a host with its access commands",
  tags,
  responses: { 200: jsonDoc("Host", hostAdminDetailView), 401: std[401], 403: std[403], 404: std[404] },
  handler: async ({ c, ctx, deps, params }) =>
    json(c, 200, await getHostDetail({ ctx, hostId: params.hostID!, access: accessSettings(deps), portal: "admin" })),
});

const lifecycleRoute = (op: "start" | "stop") =>
  defineRoute({
    method: "post",
    path: `/v1/admin/hosts/{hostID}/${op}`,
    access: "admin",
    summary: `${op === "start" ? "Start" : "Stop"} a host`,
    tags,
    body: z.strictObject({}),
    bodyOptional: true,
    responses: { 202: jsonDoc("Accepted", taskIdDoc), 401: std[401], 403: std[403], 404: std[404], 409: std[409], 429: throttledDoc },
    handler: async ({ c, ctx, params }) => json(c, 202, await requestHostLifecycle({ ctx, hostId: params.hostID!, op })),
  });

export const rebuildHostRoute = defineRoute({
  method: "post",
  path: "/v1/admin/hosts/{hostID}/rebuild",
  access: "admin",
  summary: "Rebuild a host from the current image (home kept unless mode is wipe-home)",
  tags,
  body: rebuildInput,
  bodyOptional: true,
  responses: { 202: jsonDoc("Accepted", taskIdDoc), 400: std[400], 401: std[401], 403: std[403], 404: std[404], 409: std[409], 429: throttledDoc },
  handler: async ({ c, ctx, params, body }) =>
    json(c, 202, await requestHostLifecycle({ ctx, hostId: params.hostID!, op: "rebuild", mode: body.mode })),
});

export const moveHostRoute = defineRoute({
  method: "post",
  path: "/v1/admin/hosts/{hostID}/move",
  access: "admin",
  summary: "Move a host to another engine (asynchronous: a host.move task; home, keys and binding kept)",
  tags,
  body: z.strictObject({ engine_id: z.string().min(1).max(63).optional() }),
  bodyOptional: true,
  responses: {
    202: jsonDoc("Accepted", z.object({ task_id: z.string().uuid(), target_engine_id: z.string() })),
    400: std[400],
    401: std[401],
    403: std[403],
    404: std[404],
    409: std[409],
  },
  handler: async ({ c, ctx, params, body }) => json(c, 202, await requestHostMove({ ctx, hostId: params.hostID!, engineId: body.engine_id })),
});

const outdatedDoc = z.object({
  dry_run: z.boolean(),
  requested: z.array(
    z.object({
      host_id: z.string().uuid(),
      short_id: z.string(),
      username: z.string(),
      status: z.string(),
      task_id: z.string().uuid().nullable(),
      stop_task_id: z.string().uuid().nullable(),
    }),
  ),
  skipped: z.array(z.object({ host_id: z.string().uuid(), short_id: z.string(), code: z.string(), message: z.string() })),
});

export const rebuildOutdatedRoute = defineRoute({
  method: "post",
  path: "/v1/admin/hosts/rebuild-outdated",
  access: "admin",
  summary:
    "Rebuild (preserve-home) every running or stopped host whose image is outdated; stopped hosts are stopped again after. dry_run lists them only",
  tags,
  body: z.strictObject({ dry_run: z.boolean().default(false) }),
  bodyOptional: true,
  responses: {
    200: jsonDoc("Dry run: the hosts a rebuild would cover", outdatedDoc),
    202: jsonDoc("Accepted: one rebuild task per outdated host", outdatedDoc),
    400: std[400],
    401: std[401],
    403: std[403],
  },
  handler: async ({ c, ctx, body }) => {
    const result = await rebuildOutdatedHosts({ ctx, dryRun: body.dry_run });
    return json(c, result.dry_run ? 200 : 202, result);
  },
});

export const rotateSshPasswordRoute = defineRoute({
  method: "post",
  path: "/v1/admin/hosts/{hostID}/rotate-ssh-password",
  access: "admin",
  summary: "Generate a new SSH password for the host (shown once)",
  tags,
  body: z.strictObject({}),
  bodyOptional: true,
  responses: { 200: jsonDoc("New password", z.object({ ssh_password: z.string() })), 401: std[401], 403: std[403], 404: std[404], 409: std[409] },
  handler: async ({ c, ctx, params }) => json(c, 200, await rotateHostSshPassword({ ctx, hostId: params.hostID! })),
});

export const deleteHostRoute = defineRoute({
  method: "delete",
  path: "/v1/admin/hosts/{hostID}",
  access: "admin",
  summary: "Delete a host (containers, gateway and, unless keep_home=true, its home volume)",
  tags,
  query: deleteHostQuery,
  responses: { 202: jsonDoc("Accepted", taskIdDoc), 400: std[400], 401: std[401], 403: std[403], 404: std[404] },
  handler: async ({ c, ctx, params, query }) =>
    json(c, 202, await deleteHost({ ctx, hostId: params.hostID!, keepHome: query.keep_home === "true" })),
});

export const adminHostRoutes: AnyRoute[] = [
  createHostRoute,
  listHostsRoute,
  getHostRoute,
  lifecycleRoute("start"),
  lifecycleRoute("stop"),
  rebuildHostRoute,
  moveHostRoute,
  rebuildOutdatedRoute,
  rotateSshPasswordRoute,
  deleteHostRoute,
];
