import type { Context } from "hono";
import type { ApiConfig } from "../shared/config/api.js";
import type { Database } from "../shared/db/client.js";
import type { Actor, AuthDeps, ServiceDeps } from "../shared/services/context.js";

/** Everything the API needs, built once in api/main.ts (or by a test) and passed to createApp. */
export interface ApiDeps extends ServiceDeps, AuthDeps {
  config: ApiConfig;
  database: Database;
  clientIp: (c: Context) => string;
  authenticate: (token: string) => Promise<Actor | null>;
}
