import { eq } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.js";
import { systemKeys } from "../../db/schema/index.js";
import { SSH_PROXY_HOST_KEY } from "../system-keys/ensure.js";
import type { AccessView } from "../../views/index.js";

export interface AccessSettings {
  publicBaseUrl: string;
  sshPublicHost: string;
  sshPublicPort: number;
}

/**
 * Access commands for a host, built only from configuration (never from the request's Host
 * header, docs/architecture.md#processes). Short ids are [a-z0-9]{6}, so they are safe shell words.
 */
export async function accessFor(
  db: DbOrTx,
  s: AccessSettings,
  host: { id: string; shortId: string },
  portal: "admin" | "user",
): Promise<AccessView> {
  const [key] = await db.select({ publicKey: systemKeys.publicKey }).from(systemKeys).where(eq(systemKeys.name, SSH_PROXY_HOST_KEY));
  const sshHost = s.sshPublicHost.includes(":") ? `[${s.sshPublicHost}]` : s.sshPublicHost;
  return {
    short_id: host.shortId,
    entry_command: `curl -sSf ${s.publicBaseUrl}/entry/${host.shortId} | bash`,
    bootstrap_command: `curl -sSf ${s.publicBaseUrl}/v1/bootstrap/script | bash`,
    ssh_command: `ssh ${host.shortId}@${sshHost} -p ${s.sshPublicPort}`,
    ssh_host_key: key?.publicKey ?? null,
    vnc_path: `/v1/${portal}/hosts/${host.id}/vnc/`,
  };
}
