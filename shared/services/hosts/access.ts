import type { AccessView } from "../../views/index.js";

export interface AccessSettings {
  publicBaseUrl: string;
  sshPublicHost: string;
  sshPublicPort: number;
}

/**
 * Access commands for a host, built only from configuration (never from the request's Host
 * header, docs/architecture.md#processes). Short ids are [a-z0-9]{6}, so they are safe shell words.
 * `sshHostKey` is the SSH proxy's public host key (system_keys), read by the caller's query.
 */
export function renderAccess(
  s: AccessSettings,
  host: { id: string; shortId: string },
  portal: "admin" | "user",
  sshHostKey: string | null,
): AccessView {
  const sshHost = s.sshPublicHost.includes(":") ? `[${s.sshPublicHost}]` : s.sshPublicHost;
  return {
    short_id: host.shortId,
    entry_command: `curl -sSf ${s.publicBaseUrl}/entry/${host.shortId} | bash`,
    bootstrap_command: `curl -sSf ${s.publicBaseUrl}/v1/bootstrap/script | bash`,
    ssh_command: `ssh ${host.shortId}@${sshHost} -p ${s.sshPublicPort}`,
    ssh_host_key: sshHostKey,
    vnc_path: `/v1/${portal}/hosts/${host.id}/vnc/`,
  };
}
