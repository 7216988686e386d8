import { waitForSchema } from "../drizzle/migrate.js";
import { loadEnvironment } from "../shared/config/env-file.js";
import { parseWorkerConfig, type WorkerConfig } from "../shared/config/worker.js";
import { createSecretBox } from "../shared/crypto/secrets.js";
import { createDatabase, type Database } from "../shared/db/client.js";
import { createLogger, type Logger } from "../shared/logger.js";
import { parseOrExit } from "../shared/process/boot.js";
import { handleShutdown } from "../shared/process/lifecycle.js";
import { createEnqueuer } from "../shared/queue/enqueuer.js";
import { createHostWaker } from "../shared/queue/wake.js";
import { createQueues } from "../shared/queue/queues.js";
import { createRedis, waitForRedis } from "../shared/redis.js";
import { publishRevocation } from "../shared/services/revocations.js";
import { createLiveNotifier } from "../shared/services/live/notify.js";
import { startConsumers } from "./consumers.js";
import type { WorkerDeps } from "./deps.js";
import { attachEngine, recordEngineHeartbeat } from "./engine.js";
import { importMissingImages } from "./image-sync.js";
import { startHeartbeat } from "./heartbeat.js";
import { detectWireguard } from "./network/wireguard-impl.js";
import { createWorkerMetrics } from "./metrics.js";
import { createMetricsRegistry } from "../shared/metrics/registry.js";
import { serveMetrics } from "../shared/metrics/server.js";
import { startImageWatch } from "./images.js";
import { type SshProbe, probeSsh } from "./hosts/ssh-ready.js";
import { ensureNetworks } from "./hosts/steps.js";
import { startTestGatewaySpare } from "./network/test-spare.js";
import { type PoolKeeper, startPoolKeeper } from "./pool/keeper.js";
import { buildRegistry } from "./registry.js";
import { createDockerRuntime } from "./runtime/docker/docker-runtime.js";
import type { Runtime } from "./runtime/runtime.js";
import { HostLocks } from "./tasks/host-lock.js";

/**
 * Start a worker on the given dependencies: queue consumers, schedulers, heartbeat. Used by the
 * composition root below and by tests (which pass their own database, prefix and intervals).
 */
export async function startWorker(
  config: WorkerConfig,
  logger: Logger,
  parts: { database: Database; runtime?: Runtime; sshProbe?: SshProbe; runtimeFor?: WorkerDeps["runtimeFor"] },
): Promise<{ deps: WorkerDeps; metricsPort: number | null; pool: PoolKeeper; stop: () => Promise<void> }> {
  const redis = createRedis(config.REDIS_URL, { name: "ccp-worker" });
  redis.on("error", (err) => logger.warn({ err: err.message }, "redis connection error"));
  await waitForRedis(redis, 30000);
  const bull = createRedis(config.REDIS_URL, { name: "ccp-worker-queues", forBullmq: true });
  bull.on("error", (err) => logger.warn({ err: err.message }, "redis (queues) connection error"));
  const queues = createQueues(bull, config.REDIS_PREFIX);
  // The engine this worker serves (docs/engines.md): registered, and how its Docker API is reached.
  const secrets = createSecretBox(config.SECRETS_KEY, config.SECRETS_KEY_PREVIOUS);
  const engine = await attachEngine(parts.database.db, secrets, config);
  const runtime = parts.runtime ?? createDockerRuntime({
      connection: engine.connection,
      instance: config.REDIS_PREFIX,
      logs: { maxSize: config.CONTAINER_LOG_MAX_SIZE, maxFiles: config.CONTAINER_LOG_MAX_FILES },
    });
  // Task and host changes are announced to the API's live-update streams (docs/architecture.md#live-updates).
  const notifyLive = createLiveNotifier(redis, config.REDIS_PREFIX, logger);
  const deps: WorkerDeps = {
    db: parts.database.db,
    redis,
    secrets,
    logger,
    clock: () => new Date(),
    notifyLive,
    enqueue: createEnqueuer(queues, logger, notifyLive),
    wakeHost: createHostWaker(parts.database.db, queues, logger),
    maxPendingTasksPerHost: config.HOST_MAX_PENDING_TASKS,
    revoke: (r) => publishRevocation(redis, config.REDIS_PREFIX, r, logger),
    config,
    runtime,
    ...(parts.runtimeFor ? { runtimeFor: parts.runtimeFor } : {}),
    sshProbe: parts.sshProbe ?? probeSsh,
    queues,
    locks: new HostLocks(redis, config.REDIS_PREFIX, config.WORKER_LEASE_SECONDS * 1000),
    metrics: createWorkerMetrics(createMetricsRegistry("worker")),
  };
  const registry = buildRegistry(deps);
  if (await runtime.ping()) {
    // Networks exist before any host needs them (and api/sshd can route to the bridge).
    await ensureNetworks(deps).catch((err: unknown) => logger.warn({ err }, "could not ensure networks yet"));
  }
  let dockerWasDown = false;
  let consumers: Awaited<ReturnType<typeof startConsumers>> | undefined;
  const heartbeat = startHeartbeat({
    redis,
    ping: () => runtime.ping(),
    // The engine's liveness in Postgres, for the admin list and unreachable-engine detection; when
    // Docker answers again, a reconcile at once gives `unreachable` hosts their status back.
    record: async (dockerOk) => {
      consumers?.engineUp(dockerOk);
      await recordEngineHeartbeat(parts.database.db, config.ENGINE_ID, dockerOk);
      if (dockerOk && dockerWasDown) await queues.add("system.reconcile", {}, { engineId: config.ENGINE_ID });
      dockerWasDown = !dockerOk;
    },
    prefix: config.REDIS_PREFIX,
    workerId: config.WORKER_ID,
    engineId: config.ENGINE_ID,
    egressChecks: config.EGRESS_CHECKS !== null,
    wireguard: detectWireguard(config.WIREGUARD_IMPLEMENTATION),
    intervalSeconds: config.HEARTBEAT_INTERVAL_SECONDS,
    logger,
  });
  // A new engine gets the images from an engine that has them, before this worker takes jobs
  // (docs/engines.md#images); a failure leaves tasks to fail `image_missing` as before.
  if (await runtime.ping().catch(() => false)) {
    const sync = await importMissingImages(deps).catch((err: unknown) => {
      logger.warn({ err: (err as Error).message }, "image import from other engines failed");
      return null;
    });
    if (sync?.missing.length) logger.warn({ missing: sync.missing }, "images missing on this engine and on every other engine reachable");
  }
  // Which images are current, for the API's `image_outdated` (README "Upgrading").
  const images = startImageWatch(deps, config.RECONCILE_INTERVAL_SECONDS);
  consumers = await startConsumers(deps, registry, bull);
  // Warm pool (docs/architecture.md#warm-pool): HOST_POOL_SIZE=0 leaves it idle.
  const pool = startPoolKeeper(deps);
  deps.pool = pool;
  // A ready gateway for the next egress test (EGRESS_TEST_SPARE, only with the checks configured).
  const testSpare = startTestGatewaySpare(deps);
  deps.testSpare = testSpare;
  // Off unless WORKER_METRICS_LISTEN_ADDR is set (README "Observability").
  const metricsServer = config.WORKER_METRICS_LISTEN_ADDR
    ? await serveMetrics(deps.metrics.registry, config.WORKER_METRICS_LISTEN_ADDR, logger, "worker")
    : null;
  logger.info({ engine_id: config.ENGINE_ID, concurrency: config.WORKER_CONCURRENCY }, "worker started");
  return {
    deps,
    metricsPort: metricsServer?.port ?? null,
    pool,
    stop: async () => {
      // A member being warmed is finished first (or removed on failure), then in-flight jobs are
      // finished (or handed back), then liveness stops being reported.
      await pool.stop();
      await consumers?.close();
      await testSpare.stop();
      await images.stop();
      await heartbeat.stop();
      await metricsServer?.close();
      await queues.close();
      bull.disconnect();
      redis.disconnect();
    },
  };
}

/** Composition root of the worker process: the only process that talks to Docker. */
export async function main(): Promise<void> {
  const config = parseOrExit(() => parseWorkerConfig(loadEnvironment()), "worker");
  const logger = createLogger({ level: config.LOG_LEVEL, format: config.LOG_FORMAT, name: "worker" }).child({
    worker_id: config.WORKER_ID,
  });
  const database = createDatabase(config.DATABASE_URL, { applicationName: "ccp-worker", max: config.WORKER_CONCURRENCY + 4 });
  await waitForSchema(database, { onWait: () => logger.info("waiting for the database schema (the api applies migrations)") });
  const worker = await startWorker(config, logger, { database });
  handleShutdown(logger, 60_000, async () => {
    await worker.stop();
    await database.close();
  });
}
