import { randomUUID } from "node:crypto";
import { createServer as createNetServer, type Server as NetServer } from "node:net";
import { eq } from "drizzle-orm";
import type { Redis } from "ioredis";
import ssh2 from "ssh2";
import type { FailureLimiter, LimitKey } from "../shared/auth/rate-limit.js";
import type { SshdConfig } from "../shared/config/sshd.js";
import { type SecretBox, secretAt } from "../shared/crypto/secrets.js";
import type { Db } from "../shared/db/client.js";
import { hosts, users } from "../shared/db/schema/index.js";
import type { Logger } from "../shared/logger.js";
import { redisKey } from "../shared/redis.js";
import { recordEvent } from "../shared/services/events.js";
import { isExpired } from "../shared/services/users/render.js";
import { type PendingConnection, UnauthGate } from "./admission.js";
import { consumeTicket, ownerHasKey, passwordMatches, signatureVerifies, type AuthMethod } from "./credentials.js";
import { DISCONNECT_NO_MORE_AUTH_METHODS, disconnectWithMessage } from "./disconnect.js";
import type { ForwardPolicy } from "./forward-policy.js";
import { type RelayStats, relayConnection } from "./relay.js";
import { resolveTarget, type Target } from "./resolve-target.js";
import type { SessionRegistry } from "./session-registry.js";
import type { SshdMetrics } from "./metrics.js";
import { sendAuthBanner } from "./banner.js";
import { wakeForLogin } from "./wake.js";
import type { TaskRef } from "../shared/queue/queues.js";
import { effectiveRecording } from "../shared/services/sessions/policy.js";
import { AsciicastRecorder, recordingNotice } from "../shared/services/sessions/recorder.js";
import type { SessionStore } from "../shared/services/sessions/store.js";

/** The server identification clients see: `SSH-2.0-cloud-cli-proxy` (docs/architecture.md#ssh-proxy). */
export const SSH_IDENT = "cloud-cli-proxy";

export interface SshdDeps {
  db: Db;
  redis: Redis;
  secrets: SecretBox;
  logger: Logger;
  config: SshdConfig;
  /** Lockout counters (namespace `sshfail`): per login name and per client IP. */
  limiter: FailureLimiter;
  sessions: SessionRegistry;
  forwardPolicy: ForwardPolicy;
  clock: () => Date;
  /** This process's Prometheus registry and the series sessions and logins feed. */
  metrics: SshdMetrics;
  /** Hands a committed task to its queue: a login's wake (docs/idle.md#wake). */
  enqueue: (task: TaskRef) => Promise<void>;
  /** Session records and recordings (docs/sessions.md). */
  records: SessionStore;
}

const METHODS: ssh2.AuthenticationType[] = ["password", "publickey"];
const unmap = (ip: string) => ip.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, "$1");

/** Control-plane addresses the worker published (management and underlay bridges). */
function controlPlaneAddresses(deps: SshdDeps): () => Promise<string[]> {
  let cache: { at: number; value: string[] } | undefined;
  return async () => {
    if (cache && Date.now() - cache.at < 30_000) return cache.value;
    // One field per engine (worker/hosts/steps.ts ensureNetworks): every engine's bridges.
    const all = await deps.redis.hgetall(redisKey(deps.config.REDIS_PREFIX, "engine-networks")).catch(() => ({}) as Record<string, string>);
    const value: string[] = [];
    for (const raw of Object.values(all)) {
      try {
        const n = JSON.parse(raw) as { gateways?: unknown[] };
        for (const g of n.gateways ?? []) if (typeof g === "string") value.push(g);
      } catch {
        // a field that is not JSON adds nothing
      }
    }
    cache = { at: Date.now(), value };
    return value;
  };
}

/** Back-off before the 2nd and 3rd dial of a host whose sshd reset the connection before its handshake. */
const DIAL_RETRY_MS = [50, 200];

/**
 * A reset or a close before the SSH handshake: what OpenSSH's MaxStartups does when many
 * connections arrive at once (it drops some unauthenticated ones at random). Worth another dial;
 * a wrong host key, a refused login or a timeout is not.
 */
function isEarlyDrop(err: Error & { code?: string; level?: string }): boolean {
  return err.code === "ECONNRESET" || /Connection lost before handshake/.test(err.message);
}

/**
 * Connect to the host's sshd with its internal key, accepting only the pinned host key. A dial
 * that the host's sshd drops before the handshake is tried again twice, after 50 and 200 ms, so a
 * burst of logins is not refused by the host's own MaxStartups (bench/ssh-concurrency.ts: 3 of
 * 1,000 sessions failed that way before).
 */
export async function dialHost(deps: Pick<SshdDeps, "config" | "secrets">, target: Pick<Target, "host">): Promise<ssh2.Client> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await dialHostOnce(deps, target);
    } catch (err) {
      const wait = DIAL_RETRY_MS[attempt];
      if (wait === undefined || !isEarlyDrop(err as Error)) throw err;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

function dialHostOnce(deps: Pick<SshdDeps, "config" | "secrets">, target: Pick<Target, "host">): Promise<ssh2.Client> {
  const { host } = target;
  return new Promise((resolve, reject) => {
    if (!host.managementAddress || !host.internalKeyPrivateEnc || !host.hostKeyPublic) {
      reject(new Error("host has no management address or keys yet"));
      return;
    }
    const pinned = host.hostKeyPublic.trim().split(/\s+/)[1];
    const upstream = new ssh2.Client();
    // `on`, not `once`: ssh2 can emit a second error for one failed dial (a reset, then
    // "Connection lost before handshake"), and an unheard one would crash the whole proxy. A
    // host's sshd is the tenant's: it may reset connections at will (sshd/dial-errors.test.ts).
    const fail = (err: Error) => {
      upstream.removeAllListeners("ready");
      upstream.end();
      reject(err); // the first error settles; later ones change nothing
    };
    upstream.once("ready", () => {
      upstream.removeListener("error", fail);
      upstream.on("error", () => {});
      resolve(upstream);
    });
    upstream.on("error", fail);
    upstream.connect({
      host: host.managementAddress,
      port: 22,
      username: deps.config.HOST_SSH_USER,
      privateKey: deps.secrets.decrypt(host.internalKeyPrivateEnc, secretAt.host(host.id, "internal_key_private_enc")),
      readyTimeout: deps.config.SSH_HOST_DIAL_TIMEOUT_SECONDS * 1000,
      keepaliveInterval: 15_000,
      keepaliveCountMax: 3,
      // A host presenting any other key is "unreachable", never trusted (docs/architecture.md#ssh-proxy).
      hostVerifier: (key: Buffer) => key.toString("base64") === pinned,
    });
    // See TCP_NODELAY in handleConnection: here it took the dial from ~75 ms to ~30 ms.
    upstream.setNoDelay(true);
  });
}

/**
 * The SSH proxy's listener: a plain TCP server that admits connections through the
 * unauthenticated-connection gate (sshd/admission.ts) and hands the admitted ones to ssh2. ssh2's
 * own listener is never used: it would run the key exchange for every connection, however many.
 */
export function createSshServer(deps: SshdDeps, hostKey: string): NetServer & { gate: UnauthGate } {
  const { config } = deps;
  const controlPlane = controlPlaneAddresses(deps);
  const gate = new UnauthGate({
    maxPerIp: config.SSH_MAX_UNAUTH_PER_IP,
    maxTotal: config.SSH_MAX_UNAUTH_TOTAL,
    graceMs: config.SSH_LOGIN_GRACE_SECONDS * 1000,
    logger: deps.logger,
    onDenied: ({ ip, reason, suppressed }) =>
      void recordEvent(deps.db, {
        type: "ssh.connection.denied",
        level: "warn",
        message: `SSH connection refused: too many unauthenticated connections (${reason === "per_ip" ? "from this address" : "in total"})`,
        metadata: { ip, reason, suppressed },
      }).catch(() => {}),
  });
  const ssh = new ssh2.Server(
    {
      hostKeys: [hostKey],
      ident: SSH_IDENT,
      keepaliveInterval: config.SSH_KEEPALIVE_INTERVAL_SECONDS * 1000,
      keepaliveCountMax: 3,
    },
    (client, info) => {
      const ip = unmap(info.ip);
      handleConnection(deps, controlPlane, client, ip, gate.lookup(ip, info.port));
    },
  );
  const server = createNetServer((socket) => {
    const ip = socket.remoteAddress === undefined ? undefined : unmap(socket.remoteAddress);
    if (ip === undefined) {
      socket.destroy(); // already gone
      return;
    }
    if (gate.admit(socket, ip)) ssh.injectSocket(socket);
  });
  return Object.assign(server, { gate });
}

function handleConnection(
  deps: SshdDeps,
  controlPlane: () => Promise<string[]>,
  client: ssh2.Connection,
  ip: string,
  pending: PendingConnection | undefined,
): void {
  const { config, db } = deps;
  // TCP_NODELAY on both legs, as OpenSSH does. Performance bug fixed (found by
  // bench/ssh-latency.ts): ssh2 leaves Nagle on, and SSH's handshake and auth are runs of small
  // packets, so a packet written while the previous one was unacknowledged waited for the peer's
  // delayed ACK (~40 ms): the dial to the host spent 46 ms between SERVICE_REQUEST and
  // SERVICE_ACCEPT alone; interactive keystrokes and `ssh -L` request/response traffic paid it too.
  (client as unknown as { setNoDelay(noDelay: boolean): void }).setNoDelay(true); // in ssh2, missing from @types/ssh2
  const sessionId = randomUUID();
  const log = deps.logger.child({ session_id: sessionId, ip });
  const targets = new Map<string, Promise<Target | null>>();
  const target = (login: string) => {
    let t = targets.get(login);
    if (!t) {
      t = resolveTarget(db, login);
      targets.set(login, t);
    }
    return t;
  };
  let failures = 0;
  let authenticated = false;
  let finished = false;
  client.on("error", (err) => log.debug({ err: err.message }, "client connection error"));
  // Whether the client is gone, from the first moment: a login that waits (a wake) must stop at
  // once when its client leaves, even one that left while its credential was being checked.
  const gone = new AbortController();
  client.once("close", () => gone.abort());
  // The login grace period runs from the TCP accept (sshd/admission.ts); at its end the client is
  // told why. No record means the gate already let this connection go (it timed out or closed).
  if (!pending) {
    disconnectWithMessage(client, "login grace time exceeded");
    return;
  }
  const admission = pending;
  admission.onGraceExpired = () => {
    finished = true;
    disconnectWithMessage(client, "login grace time exceeded");
  };

  const refuse = async (t: Target, reason: string, message: string) => {
    await recordEvent(db, {
      type: "ssh.refused",
      level: "warn",
      message: `SSH login refused: ${reason}`,
      userId: t.owner.id,
      hostId: t.host.id,
      metadata: { reason, ip },
    }).catch(() => {});
    finished = true;
    disconnectWithMessage(client, message);
  };

  client.on("authentication", (ctx) => {
    void authenticate(ctx).catch((err: unknown) => {
      log.error({ err }, "authentication handler failed");
      if (!finished) disconnectWithMessage(client, "temporary failure; try again shortly");
    });
  });

  async function authenticate(ctx: ssh2.AuthContext): Promise<void> {
    if (authenticated || finished) return ctx.reject();
    const login = ctx.username.slice(0, 128);
    if (ctx.method !== "password" && ctx.method !== "publickey") return ctx.reject(METHODS);
    // A public key offered without a signature is a query: answer it, count nothing.
    if (ctx.method === "publickey" && !ctx.signature) {
      const t = await target(login);
      const ok = t ? await ownerHasKey(db, t, ctx.key.algo, ctx.key.data) : null;
      return ok ? ctx.accept() : ctx.reject(METHODS);
    }
    // Only guessable secrets — the host's SSH password — are subject to lockouts, and they count
    // per (login, address) plus per address (issue 10 §3). A public short id used to be enough
    // to lock every way into a host, keys included, for 15 minutes: now an attacker locks out
    // only their own address, and a key (a signature) or a one-time ticket (≥ 128 random bits)
    // is never refused because someone failed passwords. Those attempts still count toward
    // SSH_MAX_AUTH_TRIES on their connection.
    const guessable = ctx.method === "password" && !ctx.password.startsWith("ccpt_");
    const keys: LimitKey[] = guessable
      ? [
          { type: "user", value: `${login.toLowerCase()}@${ip}` },
          { type: "ip", value: ip },
        ]
      : [];
    // Count this attempt up front, atomically, and give it back if it turns out not to be a
    // failure. Bug fixed (found by test/docker/ssh-proxy.test.ts, "a burst of concurrent wrong
    // passwords"): with `check` before and `recordFailure` after the credential check, 16
    // concurrent connections all passed `check` before any failure was counted, so a burst got
    // more guesses than SSH_LOCKOUT_MAX_PER_LOGIN (11 failures recorded for a limit of 10). Same
    // fix as the API's login (FailureLimiter.acquire).
    const blocked = await deps.limiter.acquire(keys);
    if (blocked) {
      // Only guessable passwords have lockout keys (above), so only they can be locked out.
      deps.metrics.auth.inc({ method: "password", result: "locked" });
      if (blocked.firstRejection) {
        await recordEvent(db, {
          type: "ssh.auth.locked",
          level: "warn",
          message: `SSH logins locked (${blocked.key.type})`,
          metadata: { key_type: blocked.key.type, login, ip },
        });
      }
      finished = true;
      return disconnectWithMessage(client, "too many failed attempts; try again later");
    }
    let t: Target | null;
    let method: AuthMethod = "password";
    let ok = false;
    try {
      t = await target(login);
      if (t && ctx.method === "password") {
        if (ctx.password.startsWith("ccpt_")) {
          method = "ticket";
          ok = await consumeTicket(db, t, ctx.password, deps.clock());
        } else {
          ok = passwordMatches(deps.secrets, t, ctx.password);
        }
      } else if (t && ctx.method === "publickey") {
        method = "publickey";
        const line = await ownerHasKey(db, t, ctx.key.algo, ctx.key.data);
        ok = Boolean(line && ctx.blob && ctx.signature && signatureVerifies(line, ctx.blob, ctx.signature, ctx.hashAlgo));
      }
    } catch (err) {
      // Not a failure of the client's: give the attempt back.
      await deps.limiter.release(keys).catch(() => {});
      throw err;
    }
    deps.metrics.auth.inc({ method, result: ok ? "success" : "failure" });
    if (!ok) {
      failures++; // already counted by acquire()
      await recordEvent(db, {
        type: "ssh.auth.failed",
        level: "warn",
        message: "SSH authentication failed",
        userId: t?.owner.id ?? null,
        hostId: t?.host.id ?? null,
        metadata: { login, ip, method: ctx.method === "publickey" ? "publickey" : method },
      });
      if (failures >= config.SSH_MAX_AUTH_TRIES) {
        finished = true;
        return disconnectWithMessage(client, "too many authentication failures", DISCONNECT_NO_MORE_AUTH_METHODS);
      }
      return ctx.reject(METHODS);
    }
    // A proven credential is not a failure: un-count it for the IP, and reset the login name's counter.
    if (guessable) {
      await deps.limiter.release([{ type: "ip", value: ip }]);
      await deps.limiter.reset(keys[0]!);
    }
    const target_ = t!;
    // Re-read: the credential is proven; now the account and host state decide (not counted).
    const [owner] = await db.select().from(users).where(eq(users.id, target_.owner.id));
    let [host] = await db.select().from(hosts).where(eq(hosts.id, target_.host.id));
    if (!owner || owner.deletedAt || !host) return refuse(target_, "not_found", "host not found");
    if (owner.status === "disabled") return refuse(target_, "account_disabled", "account disabled");
    if (isExpired(owner, deps.clock())) return refuse(target_, "account_expired", "account expired");
    // The host's session slot is claimed before any wait, so logins waiting for a wake count
    // toward SSH_MAX_SESSIONS_PER_HOST like open sessions (no unbounded pile of waiters).
    if (!(await deps.sessions.claim(host.id, sessionId, config.SSH_MAX_SESSIONS_PER_HOST))) {
      return refuse({ host, owner }, "too_many_sessions", `too many sessions for host ${host.shortId}`);
    }
    const hostId = host.id;
    const unclaim = () => deps.sessions.remove({ id: sessionId, hostId }).catch(() => {});
    if (host.status !== "running") {
      // A host stopped for idleness wakes for this login (docs/idle.md#wake). The credential is
      // proven: the connection leaves the unauthenticated gate, so the wait is not cut by the
      // login grace; it is bounded by WAKE_TIMEOUT_SECONDS instead, and ends with the client.
      admission.authenticated();
      if (gone.signal.aborted) {
        await unclaim();
        return;
      }
      const woken = await wakeForLogin(deps, client, host, log, gone.signal);
      if (woken.outcome === "running") host = woken.host;
      else if (woken.outcome === "failed") {
        await unclaim();
        return refuse(target_, woken.reason, woken.message);
      }
    }
    if (host.status !== "running") {
      await unclaim();
      return refuse(
        target_,
        "host_not_running",
        `host ${host.shortId} is not running (status: ${host.status}); run the bootstrap or entry command to start it`,
      );
    }
    const fresh: Target = { host, owner };
    let upstream: ssh2.Client;
    log.debug({ host_id: host.id, addr: host.managementAddress }, "credential proven; dialing host");
    try {
      upstream = await dialHost(deps, fresh);
    } catch (err) {
      log.warn({ err: (err as Error).message, host_id: host.id }, "host sshd unreachable");
      await deps.sessions.remove({ id: sessionId, hostId: host.id });
      return refuse(fresh, "host_unreachable", `host ${host.shortId} is unreachable; try again shortly`);
    }
    if (finished || gone.signal.aborted) {
      upstream.end();
      await deps.sessions.remove({ id: sessionId, hostId: host.id });
      return;
    }
    authenticated = true;
    admission.authenticated(); // frees its unauthenticated slot and stops the grace timer
    log.debug("host dialed; accepting");
    // Told before the session starts, in the SSH banner (OpenSSH prints it on stderr), and again
    // on the first recorded channel's stderr (docs/sessions.md#recording).
    const recordingMode = effectiveRecording(fresh.host, fresh.owner, config.SESSION_RECORDING);
    if (recordingMode !== "off") sendAuthBanner(client, `${recordingNotice(recordingMode)}\n`);
    ctx.accept();
    startSession(fresh, upstream, method, login);
  }

  function startSession(t: Target, upstream: ssh2.Client, method: AuthMethod, login: string) {
    const started = Date.now();
    const stats: RelayStats = { bytesIn: 0, bytesOut: 0, lastActivity: Date.now() };
    const untrackBytes = deps.metrics.bytes.track(() => ({ in: stats.bytesIn, out: stats.bytesOut }));
    // The session's record (docs/sessions.md), written off the relay's path.
    const recording = effectiveRecording(t.host, t.owner, config.SESSION_RECORDING);
    deps.records.open(
      {
        id: sessionId,
        kind: "ssh",
        hostId: t.host.id,
        userId: t.owner.id,
        login,
        method,
        sourceIp: ip,
        recording,
        startedAt: new Date(started),
      },
      () => stats,
    );
    // One recording per connection: its first interactive pty channel (an asciicast is one terminal).
    let recorder: AsciicastRecorder | undefined;
    const record =
      recording === "off"
        ? undefined
        : (pty: { cols: number; rows: number; term: string }) => {
            if (recorder) return null;
            const r = new AsciicastRecorder({
              mode: recording,
              width: pty.cols,
              height: pty.rows,
              term: pty.term,
              maxBytes: config.SESSION_RECORDING_MAX_BYTES,
              sink: (seq, data) => deps.records.writeChunk(sessionId, seq, data),
            });
            recorder = r;
            return {
              notice: recordingNotice(recording),
              output: (b: Buffer) => r.output(b),
              input: (b: Buffer) => r.input(b),
              resize: (c: number, rw: number) => r.resize(c, rw),
              end: () => void r.close().catch((err: unknown) => log.warn({ err }, "recording close failed")),
            };
          };
    let closeReason = "client_closed";
    let closed = false;
    let idleTimer: NodeJS.Timeout | undefined;
    const shutdown = (reason: string) => {
      if (closed) return;
      closed = true;
      closeReason = reason;
      if (idleTimer) clearInterval(idleTimer);
      untrackBytes();
      upstream.end();
      if (reason !== "client_closed") disconnectWithMessage(client, `session closed: ${reason.replace(/_/g, " ")}`);
      void deps.sessions.remove({ id: sessionId, hostId: t.host.id });
      const endedAt = new Date();
      const counts = { bytesIn: stats.bytesIn, bytesOut: stats.bytesOut };
      void deps.records.close(
        sessionId,
        (recorder?.close() ?? Promise.resolve(undefined)).then((r) => ({
          endedAt,
          ...counts,
          endReason: closeReason,
          ...(r ? { recordingBytes: r.bytes, recordingTruncated: r.truncated } : {}),
        })),
      );
      void recordEvent(db, {
        type: "ssh.session.closed",
        message: `SSH session to ${t.host.shortId} closed`,
        userId: t.owner.id,
        hostId: t.host.id,
        metadata: {
          session_id: sessionId,
          bytes_in: stats.bytesIn,
          bytes_out: stats.bytesOut,
          duration_ms: Date.now() - started,
          reason: closeReason,
        },
      }).catch(() => {});
    };
    deps.sessions.add({ id: sessionId, hostId: t.host.id, userId: t.owner.id, close: shutdown });
    client.on("close", () => shutdown("client_closed"));
    upstream.on("close", () => shutdown("host_closed"));
    if (config.SSH_IDLE_TIMEOUT_SECONDS > 0) {
      idleTimer = setInterval(() => {
        if (Date.now() - stats.lastActivity > config.SSH_IDLE_TIMEOUT_SECONDS * 1000) shutdown("idle_timeout");
      }, 1000);
    }
    void recordEvent(db, {
      type: "ssh.session.opened",
      message: `SSH session to ${t.host.shortId} opened`,
      userId: t.owner.id,
      hostId: t.host.id,
      metadata: { session_id: sessionId, login, method, remote_ip: ip },
    }).catch(() => {});
    relayConnection(client, upstream, {
      log,
      stats,
      controlPlane,
      env: { maxPerSession: config.SSH_MAX_PENDING_ENV_PER_SESSION, maxBytes: config.SSH_MAX_PENDING_ENV_BYTES },
      decideForward: (dest, cp) => deps.forwardPolicy.decide(dest, cp),
      ...(record ? { record } : {}),
      onForwardDenied: (dest, decision) =>
        void recordEvent(db, {
          type: "ssh.forward.denied",
          level: "warn",
          message: `port forward to ${dest.host}:${dest.port} denied (${decision.reason})`,
          userId: t.owner.id,
          hostId: t.host.id,
          metadata: {
            session_id: sessionId,
            dest_host: dest.host,
            dest_port: dest.port,
            reason: decision.reason,
            address: decision.address,
          },
        }).catch(() => {}),
    });
  }
}
