import { SessionStore } from "../shared/services/sessions/store.js";
import { createDesktopSessions } from "./vnc/desktop-sessions.js";
import { WorkGate } from "../shared/auth/work-gate.js";
import { serve, type ServerType } from "@hono/node-server";
import { runMigrations } from "../drizzle/migrate.js";
import { FailureLimiter } from "../shared/auth/rate-limit.js";
import { createTokenService } from "../shared/auth/tokens.js";
import { type ApiConfig, parseApiConfig } from "../shared/config/api.js";
import { loadEnvironment } from "../shared/config/env-file.js";
import { warmDummyHash } from "../shared/crypto/passwords.js";
import { createSecretBox } from "../shared/crypto/secrets.js";
import { createDatabase } from "../shared/db/client.js";
import { createLogger, type Logger } from "../shared/logger.js";
import { handleShutdown } from "../shared/process/lifecycle.js";
import { parseOrExit } from "../shared/process/boot.js";
import { createRedis, waitForRedis } from "../shared/redis.js";
import { createEnqueuer } from "../shared/queue/enqueuer.js";
import { RequestRate } from "../shared/auth/request-rate.js";
import { createHostWaker } from "../shared/queue/wake.js";
import { createQueues, type Queues } from "../shared/queue/queues.js";
import { authenticateToken } from "../shared/services/auth/authenticate.js";
import { AdminSeedError, seedAdmin } from "../shared/services/auth/seed-admin.js";
import { publishRevocation } from "../shared/services/revocations.js";
import { egressChecksAvailable } from "../shared/health/heartbeats.js";
import { createApp, createEntryApp } from "./app.js";
import type { ApiDeps } from "./deps.js";
import { createClientIpResolver } from "./http/client-ip.js";
import { createLiveHub } from "./live/hub.js";
import { createLiveNotifier, listenLiveChanges } from "../shared/services/live/notify.js";
import { createApiMetrics } from "./metrics.js";
import { createMetricsRegistry } from "../shared/metrics/registry.js";
import { type MetricsServer, serveMetrics } from "../shared/metrics/server.js";
import { DEFAULT_UI_DIR, loadUiBundle, type UiBundle } from "./http/ui.js";
import { createVncSessions } from "./vnc/sessions.js";
import { HostListCache } from "../shared/services/hosts/list-cache.js";
import { serveVncWebSockets } from "./vnc/websocket.js";

/** Build the API's dependencies from its configuration (also used by tests with their own). */
export function buildApiDeps(
  config: ApiConfig,
  logger: Logger,
  parts: Pick<ApiDeps, "database" | "redis"> & { queues: Queues; ui?: UiBundle | null; vncRecheckMs?: number },
): ApiDeps {
  const clock = () => new Date();
  const tokens = createTokenService({ secret: config.ADMIN_JWT_SECRET, ttlSeconds: config.JWT_TTL_SECONDS });
  const authenticate = (token: string) => authenticateToken({ db: parts.database.db, tokens, clock }, token);
  const desktops = createDesktopSessions(parts.redis, config.REDIS_PREFIX, config.VNC_SESSION_IDLE_SECONDS);
  const vnc = createVncSessions({ db: parts.database.db, logger, prefix: config.REDIS_PREFIX, desktops, recheckMs: parts.vncRecheckMs });
  const metrics = createApiMetrics(createMetricsRegistry("api"), {
    db: parts.database.db,
    queues: parts.queues,
    logger,
    openDesktopSessions: () => vnc.count(),
  });
  const notifyLive = createLiveNotifier(parts.redis, config.REDIS_PREFIX, logger);
  return {
    config,
    logger,
    clock,
    database: parts.database,
    db: parts.database.db,
    redis: parts.redis,
    notifyLive,
    enqueue: createEnqueuer(parts.queues, logger, notifyLive),
    wakeHost: createHostWaker(parts.database.db, parts.queues, logger),
    maxPendingTasksPerHost: config.HOST_MAX_PENDING_TASKS,
    engineDeadAfterSeconds: config.ENGINE_DEAD_AFTER_SECONDS,
    revoke: (r) => publishRevocation(parts.redis, config.REDIS_PREFIX, r, logger),
    egressChecksAvailable: () => egressChecksAvailable(parts.redis, config.REDIS_PREFIX, config.HEARTBEAT_FRESHNESS_SECONDS, new Date()),
    secrets: createSecretBox(config.SECRETS_KEY, config.SECRETS_KEY_PREVIOUS),
    tokens,
    limiter: new FailureLimiter(parts.redis, config.REDIS_PREFIX, {
      maxPerUser: config.AUTH_FAIL_MAX_PER_USER,
      maxPerIp: config.AUTH_FAIL_MAX_PER_IP,
      windowSeconds: config.AUTH_FAIL_WINDOW_SECONDS,
    }),
    passwordWork: new WorkGate(config.AUTH_HASH_MAX_CONCURRENT, config.AUTH_HASH_MAX_QUEUED),
    mutations: new RequestRate(parts.redis, config.REDIS_PREFIX, config.USER_MUTATIONS_PER_MINUTE, 60),
    clientIp: createClientIpResolver(config.TRUST_PROXY_CIDRS),
    authenticate,
    live: createLiveHub({
      db: parts.database.db,
      logger,
      pollMs: config.SSE_POLL_INTERVAL_MS,
      listen: config.SSE_PUSH
        ? (onChange) => listenLiveChanges({ redisUrl: config.REDIS_URL, prefix: config.REDIS_PREFIX, logger, onChange })
        : undefined,
    }),
    ui: parts.ui === undefined ? loadUiBundle() : parts.ui,
    vnc,
    desktops,
    metrics,
    hostListCache: new HostListCache(),
    records: new SessionStore({ db: parts.database.db, redis: parts.redis, prefix: config.REDIS_PREFIX, logger }),
  };
}

/** Composition root of the api process. */
export async function main(): Promise<void> {
  const config = parseOrExit(() => parseApiConfig(loadEnvironment()), "api");
  const logger = createLogger({ level: config.LOG_LEVEL, format: config.LOG_FORMAT, name: "api" });
  const database = createDatabase(config.DATABASE_URL, { applicationName: "ccp-api" });
  try {
    await runMigrations(database, async () => {
      await seedAdmin(database.db, logger, {
        username: config.ADMIN_USERNAME,
        password: config.ADMIN_PASSWORD,
        now: new Date(),
      });
    });
  } catch (err) {
    if (err instanceof AdminSeedError) logger.fatal(err.message);
    else logger.fatal({ err }, "database migration or admin seeding failed");
    await database.close();
    process.exit(1);
  }
  const redis = createRedis(config.REDIS_URL, { name: "ccp-api" });
  redis.on("error", (err) => logger.warn({ err: err.message }, "redis connection error"));
  await waitForRedis(redis, 30000);
  // BullMQ needs its own connection settings (no per-command retry limit).
  const queueConnection = createRedis(config.REDIS_URL, { name: "ccp-api-queues", forBullmq: true });
  queueConnection.on("error", (err) => logger.warn({ err: err.message }, "redis (queues) connection error"));
  const queues = createQueues(queueConnection, config.REDIS_PREFIX);

  const deps = buildApiDeps(config, logger, { database, redis, queues });
  await warmDummyHash();
  const app = createApp(deps);
  if (deps.ui) logger.info({ files: deps.ui.files.size }, "web UI loaded");
  else logger.warn({ dir: DEFAULT_UI_DIR }, "web UI not built (npm run build:ui): only the API is served");
  const servers: ServerType[] = [];
  const listen = (addr: ApiConfig["API_LISTEN_ADDR"], fetch: typeof app.fetch, what: string) =>
    new Promise<void>((resolve) => {
      const server = serve({ fetch, port: addr.port, hostname: addr.host }, () => {
        logger.info({ host: addr.host ?? "*", port: addr.port }, `${what} listening`);
        resolve();
      });
      servers.push(server);
    });
  await listen(config.API_LISTEN_ADDR, app.fetch, "api");
  // VNC WebSockets (docs/api.md#vnc-proxy) on the main listener only; revocations close them at once.
  const stopVnc = await serveVncWebSockets(servers[0] as import("node:http").Server, deps, redis);
  // Optional second listener (e.g. :80) serving only GET /entry/{shortId} (docs/architecture.md#processes).
  if (config.ENTRY_LISTEN_ADDR) await listen(config.ENTRY_LISTEN_ADDR, createEntryApp(deps).fetch, "entry listener");
  // Optional metrics listener: /metrics without a token, for a scraper on a private address
  // (README "Observability"); the main listener's /metrics still needs an admin token.
  const metricsServer: MetricsServer | null = config.METRICS_LISTEN_ADDR
    ? await serveMetrics(deps.metrics.registry, config.METRICS_LISTEN_ADDR, logger, "api")
    : null;

  handleShutdown(logger, 10_000, async () => {
    // Open event streams would otherwise hold server.close() until the grace period ends.
    deps.live.close();
    await metricsServer?.close();
    await stopVnc();
    await Promise.all(
      servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            // Idle keep-alive sockets would hold close() open until the grace period ends.
            (s as { closeIdleConnections?: () => void }).closeIdleConnections?.();
          }),
      ),
    );
    await queues.close();
    queueConnection.disconnect();
    redis.disconnect();
    await database.close();
  });
}
