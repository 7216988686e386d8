import { waitForSchema } from "../drizzle/migrate.js";
import { loadEnvironment } from "../shared/config/env-file.js";
import { parseSshdConfig } from "../shared/config/sshd.js";
import { createSecretBox } from "../shared/crypto/secrets.js";
import { createDatabase } from "../shared/db/client.js";
import { createLogger } from "../shared/logger.js";
import { parseOrExit } from "../shared/process/boot.js";
import { handleShutdown } from "../shared/process/lifecycle.js";
import { createRedis, waitForRedis } from "../shared/redis.js";
import { ensureSystemKeyPair, SSH_PROXY_HOST_KEY } from "../shared/services/system-keys/ensure.js";
import { createSshServer } from "./server.js";

/** Composition root of the SSH entry proxy. */
export async function main(): Promise<void> {
  const config = parseOrExit(() => parseSshdConfig(loadEnvironment()), "sshd");
  const logger = createLogger({ level: config.LOG_LEVEL, format: config.LOG_FORMAT, name: "sshd" });
  const database = createDatabase(config.DATABASE_URL, { applicationName: "ccp-sshd" });
  await waitForSchema(database, { onWait: () => logger.info("waiting for the database schema (the api applies migrations)") });
  const redis = createRedis(config.REDIS_URL, { name: "ccp-sshd" });
  redis.on("error", (err) => logger.warn({ err: err.message }, "redis connection error"));
  await waitForRedis(redis, 30000);
  const secrets = createSecretBox(config.SECRETS_KEY, config.SECRETS_KEY_PREVIOUS);
  // Persistent and shared by all replicas, so clients pinning it keep working across restarts.
  const hostKey = await ensureSystemKeyPair(database.db, secrets, SSH_PROXY_HOST_KEY);

  const server = createSshServer({ hostKey: hostKey.privateKey, logger, loginGraceSeconds: config.SSH_LOGIN_GRACE_SECONDS });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.SSH_LISTEN_ADDR.port, config.SSH_LISTEN_ADDR.host ?? "0.0.0.0", () => {
      server.off("error", reject);
      resolve();
    });
  });
  logger.info({ port: config.SSH_LISTEN_ADDR.port, host_key: hostKey.publicKey }, "ssh proxy listening");

  handleShutdown(logger, 10_000, async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    redis.disconnect();
    await database.close();
  });
}
