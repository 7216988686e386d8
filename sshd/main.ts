import { waitForSchema } from "../drizzle/migrate.js";
import { FailureLimiter } from "../shared/auth/rate-limit.js";
import { loadEnvironment } from "../shared/config/env-file.js";
import { parseSshdConfig, type SshdConfig } from "../shared/config/sshd.js";
import { createSecretBox } from "../shared/crypto/secrets.js";
import { createDatabase, type Database } from "../shared/db/client.js";
import { createLogger, type Logger } from "../shared/logger.js";
import { parseOrExit } from "../shared/process/boot.js";
import { handleShutdown } from "../shared/process/lifecycle.js";
import { createRedis, waitForRedis } from "../shared/redis.js";
import { createEnqueuer } from "../shared/queue/enqueuer.js";
import { createQueues } from "../shared/queue/queues.js";
import { createLiveNotifier } from "../shared/services/live/notify.js";
import { ensureSystemKeyPair, SSH_PROXY_HOST_KEY } from "../shared/services/system-keys/ensure.js";
import { createForwardPolicy } from "./forward-policy.js";
import { watchRevocations } from "./revocations.js";
import { createSshServer, type SshdDeps } from "./server.js";
import { SessionRegistry } from "./session-registry.js";
import { SessionStore } from "../shared/services/sessions/store.js";
import { createSshdMetrics } from "./metrics.js";
import { createMetricsRegistry } from "../shared/metrics/registry.js";
import { serveMetrics } from "../shared/metrics/server.js";

/** Start the SSH entry proxy on the given dependencies (used by main() and by tests). */
export async function startSshd(
  config: SshdConfig,
  logger: Logger,
  parts: { database: Database },
): Promise<{ port: number; hostKey: string; deps: SshdDeps; metricsPort: number | null; stop: () => Promise<void> }> {
  const redis = createRedis(config.REDIS_URL, { name: "ccp-sshd" });
  redis.on("error", (err) => logger.warn({ err: err.message }, "redis connection error"));
  await waitForRedis(redis, 30000);
  const subscriber = createRedis(config.REDIS_URL, { name: "ccp-sshd-sub", forBullmq: true });
  subscriber.on("error", (err) => logger.warn({ err: err.message }, "redis (subscriber) connection error"));
  const secrets = createSecretBox(config.SECRETS_KEY, config.SECRETS_KEY_PREVIOUS);
  // Persistent and shared by all replicas, so clients pinning it keep working across restarts.
  const hostKey = await ensureSystemKeyPair(parts.database.db, secrets, SSH_PROXY_HOST_KEY);
  const sessions = new SessionRegistry(redis, config.REDIS_PREFIX);
  // A login to a host stopped for idleness queues its start (docs/idle.md#wake).
  const bull = createRedis(config.REDIS_URL, { name: "ccp-sshd-queues", forBullmq: true });
  bull.on("error", (err) => logger.warn({ err: err.message }, "redis (queues) connection error"));
  const queues = createQueues(bull, config.REDIS_PREFIX);
  const deps: SshdDeps = {
    db: parts.database.db,
    redis,
    secrets,
    logger,
    config,
    clock: () => new Date(),
    limiter: new FailureLimiter(
      redis,
      config.REDIS_PREFIX,
      {
        maxPerUser: config.SSH_LOCKOUT_MAX_PER_LOGIN,
        maxPerIp: config.SSH_LOCKOUT_MAX_PER_IP,
        windowSeconds: config.SSH_LOCKOUT_WINDOW_SECONDS,
      },
      "sshfail",
    ),
    sessions,
    forwardPolicy: createForwardPolicy(config.SSH_FORWARD_BLOCKLIST),
    metrics: createSshdMetrics(createMetricsRegistry("sshd"), { openSessions: () => sessions.all().length }),
    enqueue: createEnqueuer(queues, logger, createLiveNotifier(redis, config.REDIS_PREFIX, logger)),
    records: new SessionStore({ db: parts.database.db, redis, prefix: config.REDIS_PREFIX, logger }),
  };
  const stopWatching = await watchRevocations(deps, subscriber);
  const server = createSshServer(deps, hostKey.privateKey);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.SSH_LISTEN_ADDR.port, config.SSH_LISTEN_ADDR.host ?? "0.0.0.0", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as { port: number }).port;
  logger.info({ port, host_key: hostKey.publicKey }, "ssh proxy listening");
  // Off unless SSHD_METRICS_LISTEN_ADDR is set (README "Observability").
  const metricsServer = config.SSHD_METRICS_LISTEN_ADDR
    ? await serveMetrics(deps.metrics.registry, config.SSHD_METRICS_LISTEN_ADDR, logger, "sshd")
    : null;
  return {
    port,
    hostKey: hostKey.publicKey,
    deps,
    metricsPort: metricsServer?.port ?? null,
    stop: async () => {
      await metricsServer?.close();
      // Stop listening; open sessions get up to the grace period to end on their own.
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await stopWatching();
      // Session rows and recordings still being written (docs/sessions.md#lost).
      await deps.records.stop();
      await queues.close();
      bull.disconnect();
      subscriber.disconnect();
      redis.disconnect();
    },
  };
}

/** Composition root of the SSH entry proxy. */
export async function main(): Promise<void> {
  const config = parseOrExit(() => parseSshdConfig(loadEnvironment()), "sshd");
  const logger = createLogger({ level: config.LOG_LEVEL, format: config.LOG_FORMAT, name: "sshd" });
  const database = createDatabase(config.DATABASE_URL, { applicationName: "ccp-sshd" });
  await waitForSchema(database, { onWait: () => logger.info("waiting for the database schema (the api applies migrations)") });
  const sshd = await startSshd(config, logger, { database });
  handleShutdown(logger, 10_000, async () => {
    const closing = sshd.stop();
    // Open sessions end on their own; after the grace period the process exits regardless.
    await Promise.race([closing, new Promise((r) => setTimeout(r, 9_000).unref())]);
    await database.close();
  });
}
