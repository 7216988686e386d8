import type { Duplex, Readable, Writable } from "node:stream";
import type ssh2 from "ssh2";
import type { Logger } from "../shared/logger.js";
import { normaliseBindAddress, parseAddressLiteral } from "./forward-address.js";
import type { ForwardDecision } from "./forward-policy.js";

export interface RelayStats {
  bytesIn: number;
  bytesOut: number;
  lastActivity: number;
}

export interface RelayOptions {
  log: Logger;
  stats: RelayStats;
  /** Control-plane addresses refused as `ssh -L` destinations (resolved per request). */
  controlPlane: () => Promise<string[]>;
  /** Parse/resolve/check an `ssh -L` destination; on success names the numeric address to dial. */
  decideForward: (dest: { host: string; port: number }, controlPlane: string[]) => Promise<ForwardDecision>;
  onForwardDenied: (dest: { host: string; port: number }, decision: Extract<ForwardDecision, { ok: false }>) => void;
  /**
   * Bounds on `env` requests buffered before a session's shell/exec starts (issue 10 §2): at most
   * `maxPerSession` names per session channel and `maxBytes` (names + values) over all the
   * not-yet-started sessions of this connection. Beyond either a request gets a failure reply.
   */
  env: { maxPerSession: number; maxBytes: number };
  /**
   * Session recording (docs/sessions.md#recording): asked once per session channel that starts a
   * shell or command on a pty; a tap records that channel, null leaves it unrecorded. The tap is
   * called synchronously with every chunk and must never block (sshd/server.ts, AsciicastRecorder).
   */
  record?: (pty: { cols: number; rows: number; term: string }) => RecordingTap | null;
}

export interface RecordingTap {
  /** A line shown to the user on the channel's stderr before anything else (the recording notice). */
  notice: string;
  output(data: Buffer): void;
  input(data: Buffer): void;
  resize(cols: number, rows: number): void;
  /** The channel closed: the recording ends. */
  end(): void;
}

type Accept<T> = (() => T) | undefined;

/**
 * Copy `from` into `to` with backpressure, counting bytes; never ends `to` (the caller decides
 * when, so exit-status can go before EOF/close on session channels).
 */
function pump(
  from: Duplex,
  to: { write: (b: Buffer) => boolean; once: (e: "drain", f: () => void) => unknown },
  count: (n: number) => void,
  tap?: (chunk: Buffer) => void,
) {
  from.on("data", (chunk: Buffer) => {
    count(chunk.length);
    tap?.(chunk);
    if (!to.write(chunk)) {
      from.pause();
      to.once("drain", () => from.resume());
    }
  });
}

const EMPTY = Buffer.alloc(0);

/**
 * Wait until a writable has handed everything it queued to the transport (window-limited SSH
 * channels queue until the peer grants window).
 *
 * Bug fixed (found by test/docker/ssh-proxy.test.ts, `ssh host 'head -c 10000000 /dev/zero'`
 * hanging about one run in three with every byte delivered): this used to wait for 'drain', but a
 * Writable emits 'drain' only after a write() returned false, i.e. with at least highWaterMark
 * (2 MiB for ssh2 channels) queued. When the host closed with less than that still waiting for the
 * client's window, 'drain' never came, so exit-status, EOF and close were never sent and the
 * client hung. An empty write's callback runs once every write queued before it has been handed
 * to the protocol (writes are processed in order), whatever the queue length.
 */
function flushed(w: Writable): Promise<void> {
  if (w.destroyed || w.writableFinished || w.writableLength === 0) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      w.off("close", done);
      resolve();
    };
    w.once("close", done); // closed meanwhile: nothing more will be flushed
    if (w.writableEnded) w.once("finish", done);
    else w.write(EMPTY, done);
  });
}

/** Resolves once a readable has emitted everything it buffered (or went away). */
function drained(r: Readable): Promise<void> {
  if (r.readableEnded || r.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    r.once("end", () => resolve());
    r.once("close", () => resolve());
  });
}

/** Bidirectional byte relay for TCP-like channels (direct-tcpip, forwarded-tcpip). */
function bridge(down: ssh2.ServerChannel, up: ssh2.ClientChannel, stats: RelayStats) {
  const touch = () => (stats.lastActivity = Date.now());
  pump(down, up, (n) => {
    stats.bytesIn += n;
    touch();
  });
  pump(up, down, (n) => {
    stats.bytesOut += n;
    touch();
  });
  // Half-close must survive the relay. Bug fixed (found by the `ssh -R` case of
  // test/docker/ssh-proxy.test.ts: `echo c1 | nc -N 127.0.0.1 <port>` inside the host got no
  // answer when the client-side service replied a moment after the host's EOF): EOF from the host
  // side used to be passed on with `down.end()`, but a server-side ssh2 channel closes itself when
  // its writable side finishes, so the client's channel was closed before it could answer. Now the host's EOF becomes a plain EOF (after what
  // is queued), and the channel closes only when the client closes it. The other way round,
  // `up.end()` on a client-side channel (allowHalfOpen) is already a plain EOF.
  down.on("end", () => up.end());
  up.on("end", () => void flushed(down).then(() => down.eof()));
  // close() is immediate and drops what is still queued (ssh2's _write stops once the channel is
  // no longer open), so a close from one side is passed on only after the other side's queue is
  // flushed; otherwise a forwarded connection that closes right after a large write loses its tail.
  down.on("close", () => void flushed(up).then(() => up.close()));
  up.on("close", () => void flushed(down).then(() => down.close()));
  down.on("error", () => up.close());
  up.on("error", () => down.close());
}

/**
 * Relay one authenticated client connection to the host's sshd (docs/architecture.md#ssh-proxy): session
 * channels with their requests, `ssh -L` through the host, `ssh -R` back to the client.
 */
export function relayConnection(client: ssh2.Connection, upstream: ssh2.Client, opts: RelayOptions): void {
  const { log, stats } = opts;
  const touch = () => (stats.lastActivity = Date.now());
  /** Bytes of env buffered by this connection's sessions that have not started yet. */
  let pendingEnvBytes = 0;
  let envRefusalLogged = false;

  client.on("session", (acceptSession) => {
    const session = acceptSession();
    let pty: ssh2.PseudoTtyOptions | undefined;
    // A Map, not an object: a name like `__proto__` is just a name.
    const env = new Map<string, string>();
    let envBytes = 0;
    let started = false;
    let up: ssh2.ClientChannel | undefined;
    const ok = (accept: Accept<void>) => accept?.();
    const no = (reject: Accept<void>) => reject?.();
    /** Hand the buffered env over (a copy for the upstream call) and give its bytes back. */
    const takeEnv = (): Record<string, string> => {
      const out = Object.fromEntries(env);
      env.clear();
      pendingEnvBytes -= envBytes;
      envBytes = 0;
      return out;
    };
    session.on("close", () => void takeEnv());

    session.on("pty", (accept: Accept<void>, reject: Accept<void>, info: ssh2.PseudoTtyInfo) => {
      if (up || started) return no(reject);
      pty = { rows: info.rows, cols: info.cols, height: info.height, width: info.width, term: info.term, modes: info.modes };
      ok(accept);
    });
    session.on("env", (accept: Accept<void>, reject: Accept<void>, info: { key: string; val: string }) => {
      if (up || started) return no(reject);
      const prev = env.get(info.key);
      const size = Buffer.byteLength(info.key) + Buffer.byteLength(info.val);
      const delta = size - (prev === undefined ? 0 : Buffer.byteLength(info.key) + Buffer.byteLength(prev));
      if ((prev === undefined && env.size >= opts.env.maxPerSession) || pendingEnvBytes + delta > opts.env.maxBytes) {
        if (!envRefusalLogged) {
          envRefusalLogged = true;
          log.warn(
            { names: env.size, bytes: pendingEnvBytes, max_names: opts.env.maxPerSession, max_bytes: opts.env.maxBytes },
            "ssh env request refused: too many pending",
          );
        }
        return no(reject);
      }
      env.set(info.key, info.val);
      envBytes += delta;
      pendingEnvBytes += delta;
      ok(accept);
    });
    let tap: RecordingTap | null = null;
    session.on("window-change", (accept: Accept<void>, _reject: Accept<void>, info: ssh2.WindowChangeInfo) => {
      up?.setWindow(info.rows, info.cols, info.height, info.width);
      tap?.resize(info.cols, info.rows);
      ok(accept);
    });
    session.on("signal", (accept: Accept<void>, _reject: Accept<void>, info: { name: string }) => {
      up?.signal(info.name);
      ok(accept);
    });
    // Agent and X11 forwarding are off (docs/architecture.md#ssh-proxy).
    session.on("auth-agent", (_accept: Accept<void>, reject: Accept<void>) => no(reject));
    session.on("x11", (_accept: Accept<void>, reject: Accept<void>) => no(reject));

    const attach = (
      accept: Accept<ssh2.ServerChannel>,
      reject: Accept<void>,
      open: (cb: (err: Error | undefined, ch: ssh2.ClientChannel) => void) => void,
      recordable = false,
    ) => {
      if (up || started) return no(reject);
      started = true;
      // Accept at once: OpenSSH sends EOF right behind `exec` when stdin is empty, and ssh2
      // ignores an accept that comes after the session's EOF. Input waits (paused) until the
      // host's channel is open.
      const down = accept?.();
      if (!down) return;
      down.pause();
      open((err, channel) => {
        if (err) {
          log.debug({ err: err.message }, "host refused a session request");
          down.stderr.write("cloud-cli-proxy: the host refused this session request\n");
          down.exit(255);
          down.end();
          return;
        }
        up = channel;
        let exit: { code?: number; signal?: string; dump?: boolean; desc?: string } | undefined;
        // Interactive pty sessions only (never scp, sftp or a command without a pty).
        if (recordable && pty && opts.record) {
          tap = opts.record({ cols: pty.cols ?? 80, rows: pty.rows ?? 24, term: pty.term ?? "xterm" });
          if (tap) {
            // Raw mode on the client's terminal: CR LF. Not part of the recording.
            down.stderr.write(`${tap.notice}\r\n`);
            const t = tap;
            session.once("close", () => t.end());
            channel.once("close", () => t.end());
          }
        }
        const rec = tap;
        pump(
          down,
          channel,
          (n) => {
            stats.bytesIn += n;
            touch();
          },
          rec ? (b) => rec.input(b) : undefined,
        );
        pump(
          channel,
          down,
          (n) => {
            stats.bytesOut += n;
            touch();
          },
          rec ? (b) => rec.output(b) : undefined,
        );
        pump(
          channel.stderr as unknown as Duplex,
          down.stderr as never,
          (n) => {
            stats.bytesOut += n;
            touch();
          },
          rec ? (b) => rec.output(b) : undefined,
        );
        channel.on("exit", (code: number | null, signal?: string, dump?: boolean, desc?: string) => {
          exit = code !== null && code !== undefined ? { code } : { signal, dump, desc };
        });
        down.on("end", () => channel.end()); // client EOF → host EOF (half-close kept)
        // Host closed: flush output, then exit-status/signal, then EOF + close — in that order,
        // so `ssh host cmd | …`, scp and rsync see every byte and the right status.
        channel.on("close", () => {
          // ssh2 emits a client channel's 'close' after its stdout ended, but stderr may still
          // hold data paused by backpressure: let it through before the exit status.
          void drained(channel.stderr as unknown as Readable)
            .then(() => flushed(down))
            .then(() => flushed(down.stderr as unknown as Writable))
            .then(() => {
              if (exit?.code !== undefined) down.exit(exit.code);
              else if (exit?.signal) down.exit(exit.signal.replace(/^SIG/, ""), exit.dump ?? false, exit.desc ?? "");
              down.end();
            });
        });
        down.on("close", () => void flushed(channel).then(() => channel.close()));
        channel.on("error", () => down.close());
        down.resume();
      });
    };

    session.on("shell", (accept: Accept<ssh2.ServerChannel>, reject: Accept<void>) =>
      attach(accept, reject, (cb) => upstream.shell(pty ?? false, { env: takeEnv() }, cb), true),
    );
    session.on("exec", (accept: Accept<ssh2.ServerChannel>, reject: Accept<void>, info: { command: string }) =>
      attach(accept, reject, (cb) => upstream.exec(info.command, { pty: pty ?? false, env: takeEnv() }, cb), true),
    );
    session.on("subsystem", (accept: Accept<ssh2.ServerChannel>, reject: Accept<void>, info: { name: string }) => {
      if (info.name !== "sftp") return no(reject);
      attach(accept, reject, (cb) => {
        takeEnv();
        upstream.subsys("sftp", cb);
      });
    });
  });

  // ssh -L: opened by the host's sshd, so the connection starts inside the host's namespace.
  client.on("tcpip", (accept: () => ssh2.ServerChannel, reject: () => void, info: ssh2.TcpipRequestInfo) => {
    const dest = { host: info.destIP, port: info.destPort };
    void opts
      .controlPlane()
      .then((cp) => opts.decideForward(dest, cp))
      .then(
        (decision) => {
          if (!decision.ok) {
            opts.onForwardDenied(dest, decision);
            return reject();
          }
          // The host dials the numeric address that was checked — never the client's text.
          upstream.forwardOut(info.srcIP, info.srcPort, decision.address, info.destPort, (err, up) => {
            if (err) return reject();
            bridge(accept(), up, stats);
          });
        },
        () => reject(),
      );
  });

  // ssh -R: the host listens; each connection comes back to the client as forwarded-tcpip. The
  // bind address is checked as an address (loopback or wildcard only, any spelling) and the host
  // gets the canonical form; connections come back under the client's own text, which is what
  // its forward table matches on.
  const clientBindText = new Map<string, string>(); // "<canonical>:<port>" → the client's text
  client.on("request", (accept: ((port?: number) => void) | undefined, reject: (() => void) | undefined, name: string, info: ssh2.TcpipBindInfo) => {
    if (name !== "tcpip-forward" && name !== "cancel-tcpip-forward") return reject?.(); // unknown global requests (incl. keepalives) get a failure reply, as OpenSSH does
    const bind = normaliseBindAddress(info.bindAddr);
    if (bind === null) {
      const dest = { host: info.bindAddr, port: info.bindPort };
      if (name === "tcpip-forward") opts.onForwardDenied(dest, { ok: false, reason: "bind_address", address: parseAddressLiteral(info.bindAddr) });
      return reject?.();
    }
    if (name === "tcpip-forward") {
      upstream.forwardIn(bind, info.bindPort, (err, port) => {
        if (err) return reject?.();
        clientBindText.set(`${bind}:${info.bindPort === 0 ? port : info.bindPort}`, info.bindAddr);
        accept?.(port);
      });
    } else {
      upstream.unforwardIn(bind, info.bindPort, (err) => (err ? reject?.() : accept?.()));
    }
  });
  upstream.on("tcp connection", (info, acceptUp, rejectUp) => {
    const asRequested = clientBindText.get(`${info.destIP}:${info.destPort}`) ?? info.destIP;
    client.forwardOut(asRequested, info.destPort, info.srcIP, info.srcPort, (err, down) => {
      if (err) return rejectUp();
      bridge(down, acceptUp(), stats);
    });
  });
}
