import { z } from "zod";
import { addKey, deleteKey, generateKey, listKeys } from "../../../shared/services/ssh-keys/manage.js";
import { addKeyInput, generateKeyInput } from "../../../shared/services/ssh-keys/schemas.js";
import { Unauthorized } from "../../../shared/errors.js";
import { paginationQuery } from "../../../shared/validation.js";
import type { Actor } from "../../../shared/services/context.js";
import { json, noContent } from "../../http/reply.js";
import { type AnyRoute, defineRoute } from "../../http/route.js";
import { jsonDoc, keyDoc, listDoc, std } from "../docs.js";

/**
 * SSH key routes come in two variants with one implementation: admin routes act on the path's
 * `{userID}`, self-service routes on the caller. The owner is resolved here and nowhere else, so a
 * user's request can never name another owner.
 */
type Variant = {
  base: string;
  access: "admin" | "user";
  tag: string;
  owner: (params: Record<string, string>, actor: Actor | null) => string;
};

const admin: Variant = {
  base: "/v1/admin/users/{userID}/ssh-keys",
  access: "admin",
  tag: "ssh-keys (admin)",
  owner: (params) => params.userID!,
};
const self: Variant = {
  base: "/v1/user/ssh-keys",
  access: "user",
  tag: "ssh-keys (self-service)",
  owner: (_params, actor) => {
    if (!actor) throw Unauthorized();
    return actor.id;
  },
};

function keyRoutes(v: Variant): AnyRoute[] {
  return [
    defineRoute({
      method: "get",
      path: v.base,
      access: v.access,
      summary: "List SSH keys",
      tags: [v.tag],
      query: paginationQuery,
      responses: { 200: jsonDoc("Keys", listDoc("keys", keyDoc)), 400: std[400], 401: std[401], 403: std[403], 404: std[404] },
      handler: async ({ c, ctx, params, actor, query }) =>
        json(c, 200, await listKeys({ ctx, ownerId: v.owner(params, actor), page: query })),
    }),
    defineRoute({
      method: "post",
      path: v.base,
      access: v.access,
      summary: "Add an SSH public key",
      tags: [v.tag],
      body: addKeyInput,
      responses: {
        201: jsonDoc("Added", z.object({ key: keyDoc, task_id: z.string().optional() })),
        400: std[400],
        401: std[401],
        403: std[403],
        404: std[404],
        409: std[409],
      },
      handler: async ({ c, ctx, params, actor, body }) =>
        json(c, 201, await addKey({ ctx, ownerId: v.owner(params, actor), input: body })),
    }),
    defineRoute({
      method: "post",
      path: `${v.base}/generate`,
      access: v.access,
      summary: "Generate an ed25519 key pair (private key returned once)",
      tags: [v.tag],
      body: generateKeyInput,
      bodyOptional: true,
      responses: {
        201: jsonDoc("Generated", z.object({ key: keyDoc, private_key: z.string(), task_id: z.string().optional() })),
        400: std[400],
        401: std[401],
        403: std[403],
        404: std[404],
        409: std[409],
      },
      handler: async ({ c, ctx, params, actor, body }) =>
        json(c, 201, await generateKey({ ctx, ownerId: v.owner(params, actor), input: body })),
    }),
    defineRoute({
      method: "delete",
      path: `${v.base}/{keyID}`,
      access: v.access,
      summary: "Delete an SSH key",
      tags: [v.tag],
      responses: { 204: { description: "Deleted" }, 401: std[401], 403: std[403], 404: std[404] },
      handler: async ({ c, ctx, params, actor }) => {
        await deleteKey({ ctx, ownerId: v.owner(params, actor), keyId: params.keyID! });
        return noContent(c);
      },
    }),
  ];
}

export const adminKeyRoutes = keyRoutes(admin);
export const selfKeyRoutes = keyRoutes(self);
