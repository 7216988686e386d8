import Docker from "dockerode";
import { waitForSchema } from "../drizzle/migrate.js";
import { loadEnvironment } from "../shared/config/env-file.js";
import { parseWorkerConfig } from "../shared/config/worker.js";
import { createDatabase } from "../shared/db/client.js";
import { createLogger } from "../shared/logger.js";
import { parseOrExit } from "../shared/process/boot.js";
import { handleShutdown } from "../shared/process/lifecycle.js";
import { createRedis, waitForRedis } from "../shared/redis.js";
import { startHeartbeat } from "./heartbeat.js";

/** Composition root of the worker process: the only process that talks to Docker. */
export async function main(): Promise<void> {
  const config = parseOrExit(() => parseWorkerConfig(loadEnvironment()), "worker");
  const logger = createLogger({ level: config.LOG_LEVEL, format: config.LOG_FORMAT, name: "worker" }).child({
    worker_id: config.WORKER_ID,
  });
  const database = createDatabase(config.DATABASE_URL, { applicationName: "ccp-worker" });
  await waitForSchema(database, { onWait: () => logger.info("waiting for the database schema (the api applies migrations)") });
  const redis = createRedis(config.REDIS_URL, { name: "ccp-worker" });
  redis.on("error", (err) => logger.warn({ err: err.message }, "redis connection error"));
  await waitForRedis(redis, 30000);
  const docker = new Docker({ socketPath: config.DOCKER_SOCKET });

  const heartbeat = startHeartbeat({
    redis,
    docker,
    prefix: config.REDIS_PREFIX,
    workerId: config.WORKER_ID,
    engineId: config.ENGINE_ID,
    intervalSeconds: config.HEARTBEAT_INTERVAL_SECONDS,
    logger,
  });
  logger.info({ engine_id: config.ENGINE_ID, concurrency: config.WORKER_CONCURRENCY }, "worker started");

  handleShutdown(logger, 60_000, async () => {
    await heartbeat.stop();
    redis.disconnect();
    await database.close();
  });
}
