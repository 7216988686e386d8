import { connect, type Socket } from "node:net";
import ssh2 from "ssh2";

/** The base64 blob of an OpenSSH public key line. */
const blobOf = (line: string) => line.trim().split(/\s+/)[1] ?? "";

export interface SshProbeOptions {
  host: string;
  port?: number;
  username: string;
  privateKey: string;
  pinnedHostKey: string;
  /** The whole attempt: TCP connect, key exchange, authentication. */
  timeoutMs: number;
  /**
   * The TCP connect alone (default: `timeoutMs`). Short in readiness loops: a SYN that is dropped
   * (an address not yet routable) is retransmitted by the kernel only after 1 s, so a new attempt
   * a few milliseconds later is faster than waiting for it.
   */
  connectTimeoutMs?: number;
}

/**
 * How the worker asks whether a host's sshd is ready (WorkerDeps.sshProbe): `probeSsh` in the
 * worker; an engine without real networking (the in-memory runtime) supplies its own.
 */
export type SshProbe = (opts: SshProbeOptions) => Promise<boolean>;

/** A TCP connection within `timeoutMs`, or null (refused, unreachable, too slow). */
function connectWithin(host: string, port: number, timeoutMs: number): Promise<Socket | null> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    const timer = setTimeout(() => fail(), timeoutMs);
    const fail = () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(null);
    };
    sock.once("error", fail);
    sock.once("connect", () => {
      clearTimeout(timer);
      sock.removeListener("error", fail);
      // ssh2 reports the socket's errors from here on; this keeps one between the two from being
      // an uncaught exception.
      sock.on("error", () => {});
      resolve(sock);
    });
  });
}

/**
 * One attempt: connect to a host's sshd over the management network, require the pinned host key,
 * and authenticate with the proxy's internal key. Resolves true only when all of that worked.
 * Before sshd listens, the attempt ends at the TCP connect (refused within a millisecond, or
 * `connectTimeoutMs`), so retrying costs no key exchange.
 */
export async function probeSsh(opts: SshProbeOptions): Promise<boolean> {
  const started = Date.now();
  const sock = await connectWithin(opts.host, opts.port ?? 22, Math.min(opts.connectTimeoutMs ?? opts.timeoutMs, opts.timeoutMs));
  if (!sock) return false;
  return new Promise((resolve) => {
    const client = new ssh2.Client();
    let settled = false;
    const done = (ok: boolean) => {
      if (settled) return;
      settled = true;
      client.end();
      sock.destroy();
      resolve(ok);
    };
    client.on("ready", () => done(true));
    client.on("error", () => done(false));
    client.on("close", () => done(false));
    client.connect({
      sock,
      username: opts.username,
      privateKey: opts.privateKey,
      readyTimeout: Math.max(1, opts.timeoutMs - (Date.now() - started)),
      hostVerifier: (key: Buffer) => key.toString("base64") === blobOf(opts.pinnedHostKey),
    });
  });
}
