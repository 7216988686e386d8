/**
 * The authorization table of every API route (docs/api.md#authorization), read by authorization-matrix.test.ts.
 *
 * One row per `METHOD path` of /openapi.json. The suite fails when a route has no row here (a new
 * route must say who may call it) and when a row names a route that does not exist.
 *
 * - `public`: no credential needed (login, bootstrap, entry, health, docs).
 * - `user`: any valid token; resources are the caller's own (`/v1/user/…`, `/v1/auth/logout-all`).
 * - `admin`: the admin role only; a user's valid token gets 403 `forbidden`.
 *
 * `params` names how each path parameter is filled: `host`, `key`, `user`, `task`, … resolve to a
 * resource of the *caller's* tenant for the positive control and, on `user` routes, to another
 * tenant's resource for the cross-tenant case (`notFound` is the 404 code expected then).
 */
export type AuthClass = "public" | "user" | "admin";

export type ParamKind = "host" | "key" | "user" | "task" | "egress" | "binding" | "engine" | "shortId" | "path" | "session" | "webhook";

export interface AuthRow {
  auth: AuthClass;
  /** Path parameter name → which fixture fills it. */
  params?: Record<string, ParamKind>;
  /** The 404 code a user gets for another tenant's resource (user routes with an id). */
  notFound?: string;
  /**
   * A body that passes validation where one is needed, so auth (not validation) decides; a
   * function gets the caller's tenant (e.g. its current password).
   */
  body?: unknown | ((t: { user: { password: string } }) => unknown);
  /** The request ends the caller's session (the positive control then runs last, on a spare user). */
  revokesCaller?: boolean;
  /** The route destroys or changes the resource named by its parameters (positive control on spares). */
  destructive?: boolean;
}

const host = { hostID: "host" } as const;
const keyOfUser = { userID: "user", keyID: "key" } as const;

export const AUTH_TABLE: Record<string, AuthRow> = {
  "GET /healthz": { auth: "public" },
  "GET /readyz": { auth: "public" },
  "GET /metrics": { auth: "admin" },
  "POST /v1/auth/login": { auth: "public", body: { username: "nobody-here", password: "wrong-password" } },
  "POST /v1/admin/login": { auth: "public", body: { username: "nobody-here", password: "wrong-password" } },
  "POST /v1/auth/logout-all": { auth: "user", revokesCaller: true },

  "POST /v1/admin/users": { auth: "admin", body: { username: "matrixprobe", password: "matrix-probe-pw" } },
  "GET /v1/admin/users": { auth: "admin" },
  "GET /v1/admin/users/{userID}": { auth: "admin", params: { userID: "user" } },
  "PATCH /v1/admin/users/{userID}": { auth: "admin", params: { userID: "user" }, body: { status: "active" } },
  "DELETE /v1/admin/users/{userID}": { auth: "admin", params: { userID: "user" }, destructive: true },
  "POST /v1/admin/users/{userID}/rotate-password": { auth: "admin", params: { userID: "user" }, destructive: true },
  "PUT /v1/admin/users/{userID}/expiry": { auth: "admin", params: { userID: "user" }, body: { expires_at: null } },
  "GET /v1/admin/users/{userID}/ssh-keys": { auth: "admin", params: { userID: "user" } },
  "POST /v1/admin/users/{userID}/ssh-keys": { auth: "admin", params: { userID: "user" }, body: { public_key: "ssh-ed25519 AAAA" } },
  "POST /v1/admin/users/{userID}/ssh-keys/generate": { auth: "admin", params: { userID: "user" }, body: {} },
  "DELETE /v1/admin/users/{userID}/ssh-keys/{keyID}": { auth: "admin", params: keyOfUser, destructive: true },

  "POST /v1/admin/hosts": { auth: "admin", params: {}, body: { user_id: "00000000-0000-4000-8000-000000000000" } },
  "GET /v1/admin/hosts": { auth: "admin" },
  "GET /v1/admin/hosts/{hostID}": { auth: "admin", params: host },
  "PATCH /v1/admin/hosts/{hostID}": { auth: "admin", params: host, body: { always_on: false } },
  "DELETE /v1/admin/hosts/{hostID}": { auth: "admin", params: host, destructive: true },
  "POST /v1/admin/hosts/{hostID}/start": { auth: "admin", params: host },
  "POST /v1/admin/hosts/{hostID}/stop": { auth: "admin", params: host },
  "POST /v1/admin/hosts/{hostID}/rebuild": { auth: "admin", params: host },
  "POST /v1/admin/hosts/{hostID}/move": { auth: "admin", params: host },
  "POST /v1/admin/hosts/rebuild-outdated": { auth: "admin", body: { dry_run: true } },
  "POST /v1/admin/hosts/{hostID}/rotate-ssh-password": { auth: "admin", params: host },
  "GET /v1/admin/hosts/{hostID}/vnc/{path}": { auth: "admin", params: { hostID: "host", path: "path" } },
  "POST /v1/admin/hosts/{hostID}/vnc/session": { auth: "admin", params: host },

  "POST /v1/admin/egress-ips": { auth: "admin", body: { label: "matrix" } },
  "GET /v1/admin/egress-ips": { auth: "admin" },
  "GET /v1/admin/egress-ips/{ipID}": { auth: "admin", params: { ipID: "egress" } },
  "PUT /v1/admin/egress-ips/{ipID}": { auth: "admin", params: { ipID: "egress" }, body: { label: "matrix" } },
  "DELETE /v1/admin/egress-ips/{ipID}": { auth: "admin", params: { ipID: "egress" }, destructive: true },
  "POST /v1/admin/egress-ips/{ipID}/test": { auth: "admin", params: { ipID: "egress" } },
  "POST /v1/admin/bindings": { auth: "admin", body: { host_id: "00000000-0000-4000-8000-000000000000", egress_ip_id: "00000000-0000-4000-8000-000000000000" } },
  "DELETE /v1/admin/bindings/{bindingID}": { auth: "admin", params: { bindingID: "binding" }, destructive: true },

  "GET /v1/admin/engines": { auth: "admin" },
  "POST /v1/admin/engines": { auth: "admin", body: { id: "matrix-probe", endpoint: "unix:///var/run/matrix.sock" } },
  "GET /v1/admin/engines/{engineId}": { auth: "admin", params: { engineId: "engine" } },
  "PATCH /v1/admin/engines/{engineId}": { auth: "admin", params: { engineId: "engine" }, body: { labels: { zone: "matrix" } } },
  "POST /v1/admin/engines/{engineId}/cordon": { auth: "admin", params: { engineId: "engine" } },
  "POST /v1/admin/engines/{engineId}/uncordon": { auth: "admin", params: { engineId: "engine" } },
  "POST /v1/admin/engines/{engineId}/drain": { auth: "admin", params: { engineId: "engine" } },
  "DELETE /v1/admin/engines/{engineId}": { auth: "admin", params: { engineId: "engine" }, destructive: true },

  "GET /v1/admin/tasks": { auth: "admin" },
  "GET /v1/admin/tasks/{taskID}": { auth: "admin", params: { taskID: "task" } },
  "POST /v1/admin/tasks/{taskID}/cancel": { auth: "admin", params: { taskID: "task" } },
  "GET /v1/admin/events": { auth: "admin" },
  "GET /v1/admin/events/export": { auth: "admin" },
  "GET /v1/admin/sessions/export": { auth: "admin" },
  "POST /v1/admin/webhooks": { auth: "admin", body: { url: "http://127.0.0.1:9/matrix", event_types: ["host.*"] } },
  "GET /v1/admin/webhooks": { auth: "admin" },
  "GET /v1/admin/webhooks/{webhookID}": { auth: "admin", params: { webhookID: "webhook" } },
  "PATCH /v1/admin/webhooks/{webhookID}": { auth: "admin", params: { webhookID: "webhook" }, body: { description: "matrix" } },
  "DELETE /v1/admin/webhooks/{webhookID}": { auth: "admin", params: { webhookID: "webhook" }, destructive: true },
  "POST /v1/admin/webhooks/{webhookID}/rotate-secret": { auth: "admin", params: { webhookID: "webhook" } },
  "POST /v1/admin/webhooks/{webhookID}/test": { auth: "admin", params: { webhookID: "webhook" } },
  "GET /v1/admin/webhooks/{webhookID}/deliveries": { auth: "admin", params: { webhookID: "webhook" } },
  "GET /v1/admin/attestations": { auth: "admin" },
  "GET /v1/admin/sessions": { auth: "admin" },
  "GET /v1/admin/sessions/{sessionID}": { auth: "admin", params: { sessionID: "session" } },
  "GET /v1/admin/sessions/{sessionID}/recording": { auth: "admin", params: { sessionID: "session" } },
  "PUT /v1/admin/users/{userID}/session-recording": { auth: "admin", params: { userID: "user" }, body: { session_recording: null } },
  "PUT /v1/admin/hosts/{hostID}/session-recording": { auth: "admin", params: host, body: { session_recording: null } },
  "GET /v1/admin/dashboard/stats": { auth: "admin" },
  "GET /v1/admin/dashboard/charts": { auth: "admin" },
  "GET /v1/admin/sse": { auth: "admin" },

  "POST /v1/user/change-password": {
    auth: "user",
    body: (t: { user: { password: string } }) => ({ old_password: t.user.password, new_password: "matrix-new-password" }),
    revokesCaller: true,
  },
  "GET /v1/user/hosts": { auth: "user" },
  "GET /v1/user/hosts/{hostID}": { auth: "user", params: host, notFound: "host_not_found" },
  "POST /v1/user/hosts/{hostID}/rebuild": { auth: "user", params: host, notFound: "host_not_found" },
  "GET /v1/user/hosts/{hostID}/vnc/{path}": { auth: "user", params: { hostID: "host", path: "path" }, notFound: "host_not_found" },
  "POST /v1/user/hosts/{hostID}/vnc/session": { auth: "user", params: host, notFound: "host_not_found" },
  "GET /v1/user/ssh-keys": { auth: "user" },
  "POST /v1/user/ssh-keys": { auth: "user", body: { public_key: "ssh-ed25519 AAAA" } },
  "POST /v1/user/ssh-keys/generate": { auth: "user", body: {} },
  "DELETE /v1/user/ssh-keys/{keyID}": { auth: "user", params: { keyID: "key" }, notFound: "key_not_found", destructive: true },
  "GET /v1/user/sse": { auth: "user" },
  "GET /v1/user/sessions": { auth: "user" },
  "GET /v1/user/sessions/{sessionID}": { auth: "user", params: { sessionID: "session" }, notFound: "session_not_found" },
  "GET /v1/user/sessions/{sessionID}/recording": { auth: "user", params: { sessionID: "session" }, notFound: "session_not_found" },

  "GET /v1/bootstrap/script": { auth: "public" },
  "POST /v1/bootstrap/sessions": { auth: "public", body: { username: "nobody-here", password: "wrong-password" } },
  "GET /v1/bootstrap/tasks/{taskID}": { auth: "public", params: { taskID: "task" } },
  "GET /v1/bootstrap/tasks/{taskID}/handoff": { auth: "public", params: { taskID: "task" } },
  "GET /entry/{shortId}": { auth: "public", params: { shortId: "shortId" } },
  "POST /v1/entry/{shortId}/auth": { auth: "public", params: { shortId: "shortId" }, body: { password: "wrong-password" } },
};
