import { loadEnvironment } from "../shared/config/env-file.js";
import { parseCheckdConfig } from "../shared/config/checkd.js";
import { createLogger } from "../shared/logger.js";
import { parseOrExit } from "../shared/process/boot.js";
import { handleShutdown } from "../shared/process/lifecycle.js";
import { startCheckd } from "./server.js";

/**
 * Composition root of the egress check service (`node dist/main.js checkd`). It runs alone on a
 * small public machine: no database, no Redis, nothing of the control plane's secrets.
 */
export async function main(): Promise<void> {
  const config = parseOrExit(() => parseCheckdConfig(loadEnvironment()), "checkd");
  const logger = createLogger({ level: config.LOG_LEVEL, format: config.LOG_FORMAT, name: "checkd" });
  const checkd = await startCheckd(config, logger);
  handleShutdown(logger, 5_000, () => checkd.stop());
}
