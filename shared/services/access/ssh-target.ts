import type { SecretBox } from "../../crypto/secrets.js";
import type { Db } from "../../db/client.js";
import { ensureSystemKeyPair, SSH_PROXY_HOST_KEY } from "../system-keys/ensure.js";

/** Where the SSH proxy is advertised (docs/architecture.md#processes): configuration only, never the request. */
export interface SshEndpoint {
  sshPublicHost: string;
  sshPublicPort: number;
}

/**
 * A `known_hosts` line pinning the proxy's key: `[host]:port <alg> <base64>` when the port is not
 * 22, the bare host when it is (that is how ssh looks the host up, docs/api.md#bootstrap).
 */
export function knownHostsLine(host: string, port: number, publicKeyLine: string): string {
  const [alg, blob] = publicKeyLine.trim().split(/\s+/);
  if (!alg || !blob) throw new Error("malformed SSH public key line");
  const name = port === 22 ? host : `[${host}]:${port}`;
  return `${name} ${alg} ${blob}`;
}

/**
 * The proxy's public host key and its known-hosts line. The key is created here if the sshd has
 * not created it yet (race-safe: both sides insert-or-read the same row).
 */
export async function proxyHostKey(db: Db, secrets: SecretBox, s: SshEndpoint) {
  const { publicKey } = await ensureSystemKeyPair(db, secrets, SSH_PROXY_HOST_KEY);
  return { host_key: publicKey, known_hosts_line: knownHostsLine(s.sshPublicHost, s.sshPublicPort, publicKey) };
}
