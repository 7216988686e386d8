import { OpenAPIHono } from "@hono/zod-openapi";
import { SecretUnreadableError, UnknownKeyVersionError } from "../shared/crypto/secrets.js";
import { isServiceError, NotFound, type ServiceError, Unavailable } from "../shared/errors.js";
import { isInfrastructureError } from "../shared/infra-errors.js";
import type { ApiDeps } from "./deps.js";
import { errorResponse, internalErrorResponse, SecretUnreadable } from "./http/errors.js";
import { json } from "./http/reply.js";
import { registerRoutes, type RouteTable } from "./http/route.js";
import { registerDocsPage } from "./http/docs-page.js";
import { registerUi } from "./http/ui.js";
import { requestContext, requestIdOf, requestLogger, setRouteTemplate } from "./middleware/request-context.js";
import { allRoutes, entryListenerRoutes } from "./routes/index.js";
import { registerVncRoutes } from "./vnc/routes.js";

/** Build the HTTP application from explicit dependencies (no globals; tests build their own). */
export function createApp(deps: ApiDeps) {
  const app = new OpenAPIHono();
  app.use("*", requestContext(deps));

  const table = registerRoutes(app, deps, allRoutes);
  registerVncRoutes(app, deps);

  app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
  });
  const openapi = app.getOpenAPI31Document({
    openapi: "3.1.0",
    info: { title: "cloud-cli-proxy", version: "1.0.0", description: "Control plane API of cloud-cli-proxy." },
  });
  app.get("/openapi.json", (c) => {
    setRouteTemplate(c, "/openapi.json");
    return json(c, 200, openapi);
  });
  // The interactive reference of that document (swagger-ui-dist, same-origin assets only).
  registerDocsPage(app);
  // After every API route: the UI only ever sees paths the API does not own (docs/api.md#routing).
  registerUi(app, deps.ui);

  handleUnmatchedAndErrors(app, deps, table);
  return app;
}

/**
 * The app of the optional ENTRY_LISTEN_ADDR listener (docs/architecture.md#processes): only
 * `GET /entry/{shortId}`, so that `curl -sSf http://HOST/entry/<id> | bash` needs no port. Any
 * other path answers the JSON 404 `not_found`, whatever the main API serves there.
 */
export function createEntryApp(deps: ApiDeps) {
  const app = new OpenAPIHono();
  app.use("*", requestContext(deps));
  const table = registerRoutes(app, deps, entryListenerRoutes);
  handleUnmatchedAndErrors(app, deps, table);
  return app;
}

/** 404 / 405 for unmatched requests and the one error mapping, shared by both apps. */
function handleUnmatchedAndErrors(app: OpenAPIHono, deps: ApiDeps, table: RouteTable): void {
  app.notFound((c) => {
    const path = new URL(c.req.url).pathname;
    const allowed = table.allowedMethods(path);
    if (allowed.length > 0) {
      return json(
        c,
        405,
        { error: `method ${c.req.method} is not allowed on this path`, code: "method_not_allowed" },
        { allow: allowed.join(", ") },
      );
    }
    return errorResponse(c, NotFound("not_found", "no such route"));
  });

  app.onError((err, c) => {
    if (isServiceError(err)) return errorResponse(c, err as ServiceError);
    if (err instanceof SecretUnreadableError || err instanceof UnknownKeyVersionError) {
      // A stored secret that does not decrypt where it is (moved from another row, tampered, key
      // version missing): the operator's problem, named in the log; the client gets a clear 409.
      requestLogger(c, deps.logger).warn({ err: err.message }, "stored secret unreadable");
      return errorResponse(c, SecretUnreadable());
    }
    if (isInfrastructureError(err)) {
      requestLogger(c, deps.logger).warn({ err: (err as Error).message }, "backing service unavailable");
      return errorResponse(c, Unavailable());
    }
    const requestId = requestIdOf(c) ?? "unknown";
    requestLogger(c, deps.logger).error({ err }, "unhandled error");
    return internalErrorResponse(c, requestId);
  });
}
