import ssh2 from "ssh2";

/** The base64 blob of an OpenSSH public key line. */
const blobOf = (line: string) => line.trim().split(/\s+/)[1] ?? "";

export interface SshProbeOptions {
  host: string;
  port?: number;
  username: string;
  privateKey: string;
  pinnedHostKey: string;
  timeoutMs: number;
}

/**
 * How the worker asks whether a host's sshd is ready (WorkerDeps.sshProbe): `probeSsh` in the
 * worker; an engine without real networking (the in-memory runtime) supplies its own.
 */
export type SshProbe = (opts: SshProbeOptions) => Promise<boolean>;

/**
 * One attempt: connect to a host's sshd over the management network, require the pinned host key,
 * and authenticate with the proxy's internal key. Resolves true only when all of that worked.
 */
export function probeSsh(opts: SshProbeOptions): Promise<boolean> {
  return new Promise((resolve) => {
    const client = new ssh2.Client();
    let settled = false;
    const done = (ok: boolean) => {
      if (settled) return;
      settled = true;
      client.end();
      resolve(ok);
    };
    client.on("ready", () => done(true));
    client.on("error", () => done(false));
    client.on("close", () => done(false));
    client.connect({
      host: opts.host,
      port: opts.port ?? 22,
      username: opts.username,
      privateKey: opts.privateKey,
      readyTimeout: opts.timeoutMs,
      hostVerifier: (key: Buffer) => key.toString("base64") === blobOf(opts.pinnedHostKey),
    });
  });
}
