import { z } from "zod";
import { getHostDetail } from "../../../shared/services/hosts/detail.js";
import { requestHostLifecycle } from "../../../shared/services/hosts/lifecycle.js";
import { listOwnHosts } from "../../../shared/services/hosts/list.js";
import { rebuildInput } from "../../../shared/services/hosts/schemas.js";
import { paginationQuery } from "../../../shared/validation.js";
import { json } from "../../http/reply.js";
import { type AnyRoute, defineRoute } from "../../http/route.js";
import { jsonDoc, listDoc, std } from "../docs.js";
import { hostUserDetailView, hostUserView } from "../../../shared/views/index.js";
import { accessSettings } from "../hosts/access-settings.js";

const tags = ["portal"];

/** The portal only ever reaches the caller's own hosts: every lookup is scoped to the caller. */
export const portalHostRoutes: AnyRoute[] = [
  defineRoute({
    method: "get",
    path: "/v1/user/hosts",
    access: "user",
    summary: "List your hosts",
    tags,
    query: paginationQuery,
    responses: { 200: jsonDoc("Hosts", listDoc("hosts", hostUserView)), 400: std[400], 401: std[401] },
    handler: async ({ c, ctx, query }) => json(c, 200, await listOwnHosts({ ctx, page: query })),
  }),
  defineRoute({
    method: "get",
    path: "/v1/user/hosts/{hostID}",
    access: "user",
    summary: "Get one of your hosts with its access commands",
    tags,
    responses: { 200: jsonDoc("Host", hostUserDetailView), 401: std[401], 404: std[404] },
    handler: async ({ c, ctx, deps, params }) =>
      json(c, 200, await getHostDetail({ ctx, hostId: params.hostID!, access: accessSettings(deps), portal: "user" })),
  }),
  defineRoute({
    method: "post",
    path: "/v1/user/hosts/{hostID}/rebuild",
    access: "user",
    summary: "Rebuild your host",
    tags,
    body: rebuildInput,
    bodyOptional: true,
    responses: { 202: jsonDoc("Accepted", z.object({ task_id: z.string() })), 400: std[400], 401: std[401], 404: std[404], 409: std[409] },
    handler: async ({ c, ctx, params, body }) =>
      json(
        c,
        202,
        await requestHostLifecycle({ ctx, hostId: params.hostID!, op: "rebuild", mode: body.mode, ownerId: ctx.actor!.id }),
      ),
  }),
];
