import type { OpenAPIHono } from "@hono/zod-openapi";
import { z } from "zod";
import type { ApiDeps } from "../deps.js";
import { errorDoc } from "../routes/docs.js";
import { setRouteTemplate } from "../middleware/request-context.js";
import { vncHttpHandler } from "./http-proxy.js";

/**
 * The VNC reverse proxy's HTTP side (docs/api.md#vnc-proxy): any method under
 * `/v1/{admin,user}/hosts/{hostID}/vnc/…`, and `…/vnc` → 301 to `…/vnc/`. WebSocket upgrades on
 * the same paths are served by attachVncUpgrade on the node server.
 */
export function registerVncRoutes(app: OpenAPIHono, deps: ApiDeps): void {
  const proxy = vncHttpHandler(deps);
  for (const portal of ["admin", "user"] as const) {
    const template = `/v1/${portal}/hosts/{hostID}/vnc/{path}`;
    const handler: typeof proxy = (c) => {
      setRouteTemplate(c, template);
      return proxy(c);
    };
    app.all(`/v1/${portal}/hosts/:hostID/vnc`, handler);
    app.all(`/v1/${portal}/hosts/:hostID/vnc/*`, handler);
    app.openAPIRegistry.registerPath({
      method: "get",
      path: `/v1/${portal}/hosts/{hostID}/vnc/{path}`,
      summary:
        portal === "admin"
          ? "VNC reverse proxy to any host's desktop (any method, and WebSocket upgrades)"
          : "VNC reverse proxy to your host's desktop (any method, and WebSocket upgrades)",
      description:
        "Authenticates with `Authorization: Bearer`, or the `ccp_vnc` desktop-session cookie that `GET …/vnc/?ticket=` (a one-time ticket from `POST …/vnc/session`) sets before answering 303 to this prefix. Login tokens are never accepted in the URL.",
      tags: [portal === "admin" ? "hosts" : "portal"],
      security: [{ bearerAuth: [] }],
      request: { params: z.object({ hostID: z.string().uuid(), path: z.string() }) as never },
      responses: {
        200: { description: "The host's VNC web client, proxied" },
        101: { description: "WebSocket to the host's VNC server" },
        401: { description: "No valid token", ...errorDoc },
        403: { description: "Admin route with a user token; WebSocket from a foreign Origin", ...errorDoc },
        404: { description: "Unknown host, or another user's", ...errorDoc },
        409: { description: "host_not_running", ...errorDoc },
        502: { description: "upstream_unreachable", ...errorDoc },
        503: {
          description:
            "host_waking: the host was stopped for idleness and is starting (Retry-After: 2; a browser asking for HTML gets a page that reloads itself), or host_wake_timeout (docs/idle.md#wake)",
          ...errorDoc,
        },
      },
    });
  }
}
