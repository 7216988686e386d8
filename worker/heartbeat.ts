import type { Redis } from "ioredis";
import { publishHeartbeat, removeHeartbeat } from "../shared/health/heartbeats.js";
import type { Logger } from "../shared/logger.js";

/**
 * Publish this worker's liveness and its view of the Docker engine every interval
 * (docs/architecture.md#schedulers); /healthz's `agent` check reads these records.
 */
export function startHeartbeat(opts: {
  redis: Redis;
  /** The engine as this worker sees it (Docker ping). */
  ping: () => Promise<boolean>;
  /** Also written to the engine's row (worker/engine.ts); a failure here is only logged. */
  record?: (dockerOk: boolean) => Promise<void>;
  prefix: string;
  workerId: string;
  engineId: string;
  /** Whether this worker has the egress check endpoints (the API refuses egress tests and bindings otherwise). */
  egressChecks: boolean;
  /** Which WireGuard implementation the gateways use (worker/network/wireguard-impl.ts). */
  wireguard: "kernel" | "userspace" | "unknown";
  intervalSeconds: number;
  logger: Logger;
}): { stop: () => Promise<void> } {
  const ttl = Math.max(15, opts.intervalSeconds * 3);
  let lastDockerOk: boolean | undefined;
  const beat = async () => {
    const dockerOk = await Promise.race([
      opts.ping().catch(() => false),
      new Promise<boolean>((r) => setTimeout(() => r(false), 2000).unref()),
    ]);
    if (dockerOk !== lastDockerOk) {
      opts.logger[dockerOk ? "info" : "warn"]({ docker_ok: dockerOk }, "docker engine status");
      lastDockerOk = dockerOk;
    }
    await publishHeartbeat(
      opts.redis,
      opts.prefix,
      { worker_id: opts.workerId, engine_id: opts.engineId, docker_ok: dockerOk, egress_checks: opts.egressChecks, wireguard: opts.wireguard, at: new Date().toISOString() },
      ttl,
    );
    await opts.record?.(dockerOk).catch((err: unknown) => opts.logger.warn({ err: (err as Error).message }, "could not record the engine heartbeat"));
  };
  let running: Promise<void> = beat().catch((err) => opts.logger.warn({ err }, "heartbeat failed"));
  const timer = setInterval(() => {
    running = beat().catch((err) => opts.logger.warn({ err }, "heartbeat failed"));
  }, opts.intervalSeconds * 1000);
  return {
    async stop() {
      clearInterval(timer);
      await running;
      await removeHeartbeat(opts.redis, opts.prefix, opts.workerId).catch(() => {});
    },
  };
}
