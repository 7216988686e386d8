import type { OpenAPIHono, RouteConfig } from "@hono/zod-openapi";
import type { Context } from "hono";
import { z } from "zod";
import { Forbidden, Unauthorized } from "../../shared/errors.js";
import { actorForClaims } from "../../shared/services/auth/authenticate.js";
import type { Actor, ServiceContext } from "../../shared/services/context.js";
import type { ApiDeps } from "../deps.js";
import { parseJsonObject, readBodyText } from "./body.js";
import { throttledDoc } from "../routes/docs.js";
import { validate } from "./validate.js";
import { requestIdOf, requestLogger, setRouteTemplate } from "../middleware/request-context.js";

type Method = "get" | "post" | "put" | "patch" | "delete";
export type Access = "public" | "user" | "admin";

export interface HandlerArgs<B, Q> {
  c: Context;
  deps: ApiDeps;
  /** Service context: deps + the authenticated actor (null on public routes) + client IP. */
  ctx: ServiceContext;
  actor: Actor | null;
  body: B;
  query: Q;
  params: Record<string, string>;
}

export interface RouteDef<BS extends z.ZodType | undefined = undefined, QS extends z.ZodType | undefined = undefined> {
  method: Method;
  /** OpenAPI-style path: `/v1/admin/users/{userID}`. */
  path: string;
  access: Access;
  summary: string;
  tags: string[];
  body?: BS;
  /** An empty body means `{}` (docs/api.md#routing). */
  bodyOptional?: boolean;
  /**
   * Exempt from the per-user budget of mutating requests: only the routes a user needs to take
   * their account back (change password, log out everywhere) — a flood from a stolen token must
   * not lock its owner out of revoking it. Each has its own limits (password failures).
   */
  unbudgeted?: true;
  query?: QS;
  /** Response documentation for /openapi.json. */
  responses: RouteConfig["responses"];
  handler: (
    args: HandlerArgs<
      BS extends z.ZodType ? z.output<BS> : undefined,
      QS extends z.ZodType ? z.output<QS> : undefined
    >,
  ) => Promise<Response>;
}

/** Keeps the generic parameters of each route while letting us collect them in one array. */
export function defineRoute<BS extends z.ZodType | undefined = undefined, QS extends z.ZodType | undefined = undefined>(
  def: RouteDef<BS, QS>,
): RouteDef<BS, QS> {
  return def;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyRoute = RouteDef<any, any>;

const honoPath = (p: string) => p.replace(/\{(\w+)\}/g, ":$1");
const pathRegex = (p: string) =>
  new RegExp(`^${p.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{\w+\}/g, "[^/]+")}$`);

/** What a route documents for one status: the JSON schema, or a non-JSON body (shell scripts, event streams). */
export type DocumentedResponse = { json: z.ZodType } | { contentType: string } | { none: true };

/** The documented responses of one registered route: what the response contract checks. */
export interface RouteContract {
  method: string;
  /** The OpenAPI template, e.g. `/v1/admin/hosts/{hostID}`. */
  path: string;
  re: RegExp;
  responses: Record<number, DocumentedResponse>;
}

const contracts = new WeakMap<object, RouteContract[]>();

/**
 * The documented responses of every route registered on an app, from the same `responses` that
 * /openapi.json is generated from (README "API reference and response contract").
 */
export function routeContracts(app: object): RouteContract[] {
  return contracts.get(app) ?? [];
}

function documented(doc: unknown): DocumentedResponse {
  const content = (doc as { content?: Record<string, { schema?: unknown }> } | undefined)?.content;
  if (!content) return { none: true };
  const schema = content["application/json"]?.schema;
  if (schema instanceof z.ZodType) return { json: schema };
  return { contentType: Object.keys(content)[0] ?? "" };
}

export interface RouteTable {
  /** Methods registered for a concrete path, for 405 + Allow. */
  allowedMethods(path: string): string[];
}

/**
 * Register routes on the app: the handler (with auth → role → body size → validation, in the
 * order of docs/api.md#evaluation-order) and the OpenAPI description generated from the same schemas.
 */
export function registerRoutes(app: OpenAPIHono, deps: ApiDeps, routes: AnyRoute[]): RouteTable {
  const table: { method: string; re: RegExp }[] = [];
  const contract = contracts.get(app) ?? [];
  contracts.set(app, contract);
  for (const r of routes) {
    table.push({ method: r.method.toUpperCase(), re: pathRegex(r.path) });
    contract.push({
      method: r.method.toUpperCase(),
      path: r.path,
      re: pathRegex(r.path),
      responses: Object.fromEntries(Object.entries(documentedResponses(r)).map(([s, d]) => [Number(s), documented(d)])),
    });
    registerDoc(app, r);
    app.on(r.method.toUpperCase(), honoPath(r.path), async (c) => {
      setRouteTemplate(c, r.path);
      const ip = deps.clientIp(c);
      let actor: Actor | null = null;
      if (r.access !== "public") {
        actor = await authenticate(c, deps, r.access === "user" && r.method !== "get" && !r.unbudgeted);
        if (r.access === "admin" && actor.role !== "admin") throw Forbidden("forbidden", "admin role required");
      }
      let body: unknown = undefined;
      if (r.body) {
        const text = await readBodyText(c.req.raw);
        body = validate(r.body, parseJsonObject(text, r.bodyOptional ?? false));
      }
      const query = r.query ? validate(r.query, Object.fromEntries(new URL(c.req.url).searchParams), "query") : undefined;
      // The request's logger (every line carries request_id) and id, down to the services: a task
      // they create records the id, and the worker's lines for that task carry it too.
      const log = requestLogger(c, deps.logger);
      const ctx: ServiceContext = {
        ...deps,
        logger: log,
        enqueue: (task) => deps.enqueue(task, log),
        wakeHost: (hostId) => deps.wakeHost(hostId, log),
        requestId: requestIdOf(c),
        actor,
        ip,
      };
      return r.handler({ c, deps, ctx, actor, body, query, params: c.req.param() as Record<string, string> } as never);
    });
  }
  return {
    allowedMethods(path) {
      const methods = new Set<string>();
      for (const t of table) if (t.re.test(path)) methods.add(t.method);
      const order = ["GET", "POST", "PUT", "PATCH", "DELETE"];
      return [...methods].sort((a, b) => order.indexOf(a) - order.indexOf(b));
    },
  };
}

/**
 * The bearer token → the acting user (shared/services/auth/authenticate.ts, in its two halves).
 * A mutating user route spends the caller's request budget between them: after the signature
 * check (so only a token we issued can spend a user's budget) and before the user row is read
 * (so a flood past the budget costs one HMAC and one Redis call per request, no Postgres). The
 * budget is keyed by user and token version: tokens revoked by a password change or a log-out
 * everywhere cannot spend the budget of the tokens issued after it.
 */
async function authenticate(c: Context, deps: ApiDeps, budgeted: boolean): Promise<Actor> {
  const header = c.req.header("authorization");
  const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  if (!m) throw Unauthorized();
  const claims = await deps.tokens.verify(m[1]!);
  if (!claims) throw Unauthorized("invalid or expired token", true);
  if (budgeted && claims.role === "user") await deps.mutations.take(`${claims.sub}:${claims.tv}`);
  const actor = await actorForClaims(deps, claims);
  if (!actor) throw Unauthorized("invalid or expired token", true);
  return actor;
}

/** The per-user budget applies to every mutating route a user token reaches: documented once here. */
function documentedResponses(r: AnyRoute): RouteConfig["responses"] {
  return r.access === "user" && r.method !== "get" && !r.unbudgeted && !r.responses[429] ? { ...r.responses, 429: throttledDoc } : r.responses;
}

function registerDoc(app: OpenAPIHono, r: AnyRoute): void {
  const request: RouteConfig["request"] = {};
  const responses = documentedResponses(r);
  if (r.body) {
    request.body = { required: !r.bodyOptional, content: { "application/json": { schema: r.body as never } } };
  }
  if (r.query) request.query = r.query as never;
  const pathParams = [...r.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
  if (pathParams.length) {
    // `{userID}`-style parameters are UUIDs; others (e.g. `{shortId}`) are plain strings.
    request.params = z.object(
      Object.fromEntries(pathParams.map((p) => [p, p.endsWith("ID") ? z.string().uuid() : z.string()])),
    ) as never;
  }
  try {
    app.openAPIRegistry.registerPath({
      method: r.method,
      path: r.path,
      summary: r.summary,
      tags: r.tags,
      security: r.access === "public" ? [] : [{ bearerAuth: [] }],
      request,
      responses,
    });
  } catch {
    // A schema the generator cannot describe must never break serving the route itself.
    app.openAPIRegistry.registerPath({ method: r.method, path: r.path, summary: r.summary, tags: r.tags, responses });
  }
}
