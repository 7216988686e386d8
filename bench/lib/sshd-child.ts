/**
 * The SSH proxy in a process of its own (as in production), for the benchmarks: configured from
 * the environment the parent passes, it prints `{"port","hostKey"}` as one JSON line on stdout,
 * then answers `rss` on stdin with `{"rss","heapUsed"}` (process.memoryUsage of this process,
 * the proxy alone) and stops on `stop` or end of stdin.
 */
import { createInterface } from "node:readline";
import { parseSshdConfig } from "../../shared/config/sshd.js";
import { createDatabase } from "../../shared/db/client.js";
import { createLogger } from "../../shared/logger.js";
import { startSshd } from "../../sshd/main.js";

const config = parseSshdConfig(process.env);
const logger = createLogger({ level: process.env.LOG_LEVEL ?? "warn", name: "sshd" }, process.stderr as never);
const database = createDatabase(config.DATABASE_URL, { applicationName: "ccp-bench-sshd" });
const sshd = await startSshd(config, logger, { database });
process.stdout.write(`${JSON.stringify({ port: sshd.port, hostKey: sshd.hostKey })}\n`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  // Open sessions are the parent's to end; do not wait for them forever.
  await Promise.race([sshd.stop(), new Promise((r) => setTimeout(r, 5000))]);
  await database.close();
  process.exit(0);
};
const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (line === "rss") {
    const m = process.memoryUsage();
    process.stdout.write(`${JSON.stringify({ rss: m.rss, heapUsed: m.heapUsed })}\n`);
  } else if (line === "stop") void stop();
});
rl.on("close", () => void stop());
