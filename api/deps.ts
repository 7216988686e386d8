import type { Context } from "hono";
import type { ApiConfig } from "../shared/config/api.js";
import type { Database } from "../shared/db/client.js";
import type { Actor, AuthDeps, ServiceDeps } from "../shared/services/context.js";
import type { RequestRate } from "../shared/auth/request-rate.js";
import type { HostListCache } from "../shared/services/hosts/list-cache.js";
import type { UiBundle } from "./http/ui.js";
import type { LiveHub } from "./live/hub.js";
import type { ApiMetrics } from "./metrics.js";
import type { SessionStore } from "../shared/services/sessions/store.js";
import type { DesktopSessions } from "./vnc/desktop-sessions.js";
import type { VncSessions } from "./vnc/sessions.js";

/** Everything the API needs, built once in api/main.ts (or by a test) and passed to createApp. */
export interface ApiDeps extends ServiceDeps, AuthDeps {
  config: ApiConfig;
  database: Database;
  clientIp: (c: Context) => string;
  authenticate: (token: string) => Promise<Actor | null>;
  /** The poller behind the live-update streams (one per process; polls only while streams are open). */
  live: LiveHub;
  /** The built web UI served at `/`, or null (UI paths then answer the JSON 404). */
  ui: UiBundle | null;
  /** Open VNC WebSockets, closed on revocation and by the periodic token re-check. */
  vnc: VncSessions;
  /** Desktop tickets and sessions (the `ccp_vnc` cookie), kept in Redis. */
  desktops: DesktopSessions;
  /** Per-user budget of mutating requests (USER_MUTATIONS_PER_MINUTE). */
  mutations: RequestRate;
  /** Rendered admin host lists, served only while their rows' stamp is unchanged (docs/architecture.md#read-paths). */
  hostListCache: HostListCache;
  /** This process's Prometheus registry and the series the request path feeds (api/metrics.ts). */
  metrics: ApiMetrics;
  /** Desktop session records (docs/sessions.md). */
  records: SessionStore;
}
