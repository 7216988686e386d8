import ssh2 from "ssh2";
import type { Logger } from "../shared/logger.js";

/** The server identification clients see: `SSH-2.0-cloud-cli-proxy` (behaviour.md §11.12). */
export const SSH_IDENT = "cloud-cli-proxy";

/**
 * The SSH entry proxy's listener. Authentication and relaying to hosts arrive with the SSH proxy
 * issue; until then every login is refused with a clear message, never accepted.
 */
export function createSshServer(opts: { hostKey: string; logger: Logger; loginGraceSeconds: number }): ssh2.Server {
  const server = new ssh2.Server({ hostKeys: [opts.hostKey], ident: SSH_IDENT }, (client, info) => {
    const log = opts.logger.child({ ip: info.ip });
    const grace = setTimeout(() => client.end(), opts.loginGraceSeconds * 1000);
    client.on("authentication", (ctx) => ctx.reject(["password", "publickey"]));
    client.on("close", () => clearTimeout(grace));
    client.on("error", (err) => log.debug({ err: err.message }, "ssh client error"));
  });
  return server;
}
