import { eq } from "drizzle-orm";
import type ssh2 from "ssh2";
import { hosts, type HostRow } from "../shared/db/schema/index.js";
import type { Logger } from "../shared/logger.js";
import { requestWake, waitForWake } from "../shared/services/hosts/wake.js";
import { sendAuthBanner } from "./banner.js";
import type { SshdDeps } from "./server.js";

export type LoginWake =
  | { outcome: "running"; host: HostRow }
  /** Not wakeable: the caller refuses as for any host that is not running. */
  | { outcome: "refused" }
  | { outcome: "failed"; reason: "host_wake_failed" | "host_wake_timeout" | "client_gone"; message: string };

/**
 * An SSH login to a host that is not running (docs/idle.md#wake): a host stopped for idleness is
 * started (`host.start`, `system:wake`, via `ssh`) — or a start already under way joined — and the
 * login waits for it, at most WAKE_TIMEOUT_SECONDS, with progress lines sent as authentication
 * banners, which OpenSSH prints on stderr before the session starts. The credential is already
 * proven; the connection has left the unauthenticated gate (its login grace no longer applies).
 */
export async function wakeForLogin(
  deps: Pick<SshdDeps, "db" | "config" | "enqueue" | "clock">,
  client: ssh2.Connection,
  host: HostRow,
  log: Logger,
  /** Aborted when the client's connection closes (the caller listens from the connection's start). */
  gone: AbortSignal,
): Promise<LoginWake> {
  if (gone.aborted) return { outcome: "failed", reason: "client_gone", message: "client disconnected" };
  const { result, task } = await requestWake(deps.db, host.id, { via: "ssh", now: deps.clock() });
  if (task) await deps.enqueue(task);
  if (result.state === "refused") return { outcome: "refused" };
  if (result.state === "waking") {
    const started = Date.now();
    sendAuthBanner(client, `Host ${host.shortId} was stopped while idle: waking it up...\n`);
    {
      const end = await waitForWake(deps.db, host.id, result.taskId, {
        timeoutMs: deps.config.WAKE_TIMEOUT_SECONDS * 1000,
        pollMs: 250,
        signal: gone,
        onProgress: (p) => {
          if (p.state === "waking") sendAuthBanner(client, `waking your host... ${p.percent}% (${p.text})\n`);
        },
      });
      if (end === "aborted") return { outcome: "failed", reason: "client_gone", message: "client disconnected" };
      if (end === "timeout") {
        return {
          outcome: "failed",
          reason: "host_wake_timeout",
          message: `host ${host.shortId} did not wake within ${deps.config.WAKE_TIMEOUT_SECONDS}s; try again shortly`,
        };
      }
      if (end.state !== "running") {
        return { outcome: "failed", reason: "host_wake_failed", message: `host ${host.shortId} could not be started (${end.errorCode ?? "start_failed"})` };
      }
      log.info({ host_id: host.id, wake_ms: Date.now() - started }, "host woken for an SSH login");
      sendAuthBanner(client, `Host ${host.shortId} is up (${((Date.now() - started) / 1000).toFixed(1)}s); connecting.\n`);
    }
  }
  // Re-read: the start gave the host its (possibly new) management address.
  const [fresh] = await deps.db.select().from(hosts).where(eq(hosts.id, host.id));
  if (!fresh || fresh.status !== "running") return { outcome: "refused" };
  return { outcome: "running", host: fresh };
}
