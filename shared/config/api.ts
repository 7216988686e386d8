import { z } from "zod";
import { commonConfigShape } from "./common.js";
import { boolVar, cidrListVar, intVar, isNotPlaceholder, listenAddrVar, optionalListenAddrVar, PLACEHOLDER_MESSAGE } from "./fields.js";

import { parseConfig } from "./parse.js";

const USERNAME = /^[a-z0-9][a-z0-9._-]{2,49}$/;

/** `http(s)://host[:port]`: an origin, a trailing `/` removed. */
const baseUrlVar = () =>
  z
    .string()
    .transform((v) => v.replace(/\/$/, ""))
    .refine((v) => {
      try {
        const u = new URL(v);
        return (
          (u.protocol === "http:" || u.protocol === "https:") &&
          u.username === "" &&
          u.password === "" &&
          u.pathname === "/" &&
          u.search === "" &&
          u.hash === "" &&
          !v.endsWith("/")
        );
      } catch {
        return false;
      }
    }, "must be http(s)://host[:port] without path, query or user info");

export const apiConfigSchema = z.object({
  ...commonConfigShape,
  PUBLIC_BASE_URL: baseUrlVar(),
  // Optional separate origin for desktops (issue 10 §1): host-served pages then run on an origin
  // that holds nothing of the API's. Empty = desktops on PUBLIC_BASE_URL.
  VNC_PUBLIC_BASE_URL: z.union([z.literal(""), baseUrlVar()]).default(""),
  // A desktop session (the ccp_vnc cookie) ends after this long without a request or open socket.
  VNC_SESSION_IDLE_SECONDS: intVar(1800, 10, 86400),
  API_LISTEN_ADDR: listenAddrVar(":8080"),
  ENTRY_LISTEN_ADDR: optionalListenAddrVar(),
  // Optional listener serving only GET /metrics, without a token (README "Observability"): for a
  // Prometheus on loopback or a private network. Unset, /metrics is on the main listener, admin only.
  METRICS_LISTEN_ADDR: optionalListenAddrVar(),
  TRUST_PROXY_CIDRS: cidrListVar(),
  ADMIN_USERNAME: z
    .string()
    .default("admin")
    .transform((v) => v.toLowerCase())
    .refine((v) => USERNAME.test(v), "must be 3-50 characters of a-z 0-9 . _ - starting with a letter or digit"),
  ADMIN_PASSWORD: z
    .string()
    .refine(isNotPlaceholder, PLACEHOLDER_MESSAGE)
    .refine((v) => [...v].length >= 8 && [...v].length <= 128, "must be 8-128 characters")
    // eslint-disable-next-line no-control-regex
    .refine((v) => !/[\u0000-\u001f\u007f-\u009f]/.test(v), "must not contain control characters"),
  ADMIN_JWT_SECRET: z
    .string()
    .refine(isNotPlaceholder, PLACEHOLDER_MESSAGE)
    .refine((v) => Buffer.byteLength(v, "utf8") >= 32, "must be at least 32 bytes"),
  JWT_TTL_SECONDS: intVar(86400, 60, 31 * 86400),
  AUTH_FAIL_MAX_PER_USER: intVar(10, 1),
  AUTH_FAIL_MAX_PER_IP: intVar(30, 1),
  AUTH_FAIL_WINDOW_SECONDS: intVar(900, 1),
  // argon2 verifications running at once in this process, and waiting for a slot (issue 10 §3).
  AUTH_HASH_MAX_CONCURRENT: intVar(4, 1, 64),
  AUTH_HASH_MAX_QUEUED: intVar(64, 0, 10_000),
  // Mutating requests (POST/PUT/PATCH/DELETE) a user-role token may make per minute, across all
  // api processes; beyond it 429 rate_limited (issue 10 §2). Admin tokens are not limited.
  USER_MUTATIONS_PER_MINUTE: intVar(60, 1, 1_000_000),
  SSH_PUBLIC_HOST: z.string().optional(),
  SSH_PUBLIC_PORT: intVar(2222, 1, 65535),
  HANDOFF_TICKET_TTL_SECONDS: intVar(120, 1),
  // How long after its start task ended a bootstrap session may still fetch its handoff ticket.
  HANDOFF_WINDOW_SECONDS: intVar(300, 1, 3600),
  // Opening the desktop of a host stopped for idleness starts it; the waiting page gives up after
  // this long (docs/idle.md#wake).
  WAKE_TIMEOUT_SECONDS: intVar(120, 1, 3600),
  EGRESS_TEST_WAIT_SECONDS: intVar(35, 0),
  HEARTBEAT_FRESHNESS_SECONDS: intVar(15, 1),
  EGRESS_REQUIRED: boolVar(false),
  // Live updates (GET /v1/admin/sse, /v1/user/sse): whether the hub polls at once when a writer
  // announces a change on Redis (docs/architecture.md#live-updates; off = interval polling only),
  // how often Postgres is polled in any case (the fallback for lost notifications), the heartbeat
  // comment that keeps proxies from closing an idle stream, and how often a stream's token is
  // re-checked (the same 30 s as a VNC WebSocket, docs/api.md#token-checks).
  SSE_PUSH: boolVar(true),
  SSE_POLL_INTERVAL_MS: intVar(1000, 100, 60_000),
  SSE_HEARTBEAT_SECONDS: intVar(15, 1, 3600),
  SSE_AUTH_RECHECK_SECONDS: intVar(30, 1, 3600),
  // Open connections one user may hold (issue 10 §2): live-update streams and desktop WebSockets
  // (the admin's count under the admin's own id). Counted in Redis across replicas; beyond the
  // cap 429 too_many_connections before anything streams or upgrades.
  SSE_MAX_STREAMS_PER_USER: intVar(8, 1, 1000),
  VNC_MAX_WEBSOCKETS_PER_USER: intVar(16, 1, 1000),
});

export type ApiConfig = z.output<typeof apiConfigSchema> & { SSH_PUBLIC_HOST: string };

export function parseApiConfig(source: Record<string, string | undefined>): ApiConfig {
  const cfg = parseConfig(apiConfigSchema, source);
  return { ...cfg, SSH_PUBLIC_HOST: cfg.SSH_PUBLIC_HOST ?? new URL(cfg.PUBLIC_BASE_URL).hostname.replace(/^\[|\]$/g, "") };
}
