import { randomUUID } from "node:crypto";
import type { IncomingMessage, Server } from "node:http";
import type { Redis } from "ioredis";
import { ServerResponse, STATUS_CODES } from "node:http";
import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { BadGateway, Forbidden, isServiceError, type ServiceError, TooManyConnections } from "../../shared/errors.js";
import { recordEvent } from "../../shared/services/events.js";
import { waitForRedis } from "../../shared/redis.js";
import type { ApiDeps } from "../deps.js";
import { acquireConnectionSlot, type ConnectionSlot, logSlotRefusal } from "../http/connection-slots.js";
import { errorEnvelope } from "../http/errors.js";
import { forwardRequestHeaders, forwardResponseHeaders, pairs, serialiseHeaders } from "./headers.js";
import { VNC_DIAL_TIMEOUT_MS } from "./http-proxy.js";
import { assertDesktopOrigin, desktopBaseUrl, parseVncPath, resolveVncTarget, type VncTarget } from "./target.js";

/** Largest response head accepted from a host before the proxy gives up on it. */
const MAX_UPSTREAM_HEAD = 16 * 1024;

/**
 * The VNC proxy's WebSocket side on a listening server (api/main.ts and the test harness):
 * upgrades attached, revocations watched on a Redis connection of its own. The returned function
 * stops watching, closes every open VNC session and drops that connection.
 */
export async function serveVncWebSockets(server: Server, deps: ApiDeps, redis: Redis): Promise<() => Promise<void>> {
  attachVncUpgrade(server, deps);
  const subscriber = redis.duplicate();
  subscriber.on("error", (err) => deps.logger.warn({ err: err.message }, "redis (vnc revocations) connection error"));
  await waitForRedis(subscriber, 30_000);
  const stopWatch = await deps.vnc.watch(subscriber);
  return async () => {
    await stopWatch();
    deps.vnc.closeWhere(() => true, "shutdown");
    // The session rows those closes wrote (docs/sessions.md#lost).
    await deps.records.stop();
    subscriber.disconnect();
  };
}

/**
 * Serve WebSocket upgrades on the API's HTTP server: VNC proxy paths are bridged to the host's
 * VNC server (docs/api.md#vnc-proxy); any other upgrade (e.g. `Upgrade: h2c` from curl) is answered as
 * the plain HTTP request it also is, on a connection that then closes.
 */
export function attachVncUpgrade(server: Server, deps: ApiDeps): void {
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? "/", "http://api.invalid");
    const path = parseVncPath(url.pathname);
    const isWebSocket = req.method === "GET" && /^websocket$/i.test(String(req.headers.upgrade ?? ""));
    if (!path || !isWebSocket || path.upstreamPath === null) {
      serveAsPlainRequest(server, req, socket as Socket, head);
      return;
    }
    socket.on("error", () => socket.destroy());
    void bridge(deps, req, socket as Socket, head, url, { ...path, upstreamPath: path.upstreamPath }).catch((err: unknown) => {
      if (isServiceError(err)) writeError(socket, err, url.pathname);
      else {
        deps.logger.error({ err }, "VNC WebSocket proxy failed");
        writeRaw(socket, 500, { error: "internal error", code: "internal_error" }, {});
      }
    });
  });
}

async function bridge(
  deps: ApiDeps,
  req: IncomingMessage,
  client: Socket,
  head: Buffer,
  url: URL,
  path: NonNullable<ReturnType<typeof parseVncPath>> & { upstreamPath: string },
): Promise<void> {
  assertDesktopOrigin(deps, req.headers.host);
  // Cross-site WebSocket hijacking: only pages of our own origin may open the desktop.
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== new URL(desktopBaseUrl(deps)).origin) {
    throw Forbidden("forbidden", "WebSocket from a foreign origin");
  }
  const target = await resolveVncTarget(deps, path, {
    authorization: req.headers.authorization,
    cookieHeader: req.headers.cookie,
    search: url.searchParams,
  });
  if (client.destroyed) return;
  // One of the actor's VNC_MAX_WEBSOCKETS_PER_USER slots (issue 10 §2), taken before dialing the
  // host: beyond the cap the upgrade is answered 429 and no socket to the host is opened. The
  // admin's sockets count under the admin's own id, whoever owns the host.
  const limit = deps.config.VNC_MAX_WEBSOCKETS_PER_USER;
  const slot = await acquireConnectionSlot(deps.redis, {
    prefix: deps.config.REDIS_PREFIX,
    kind: "vnc",
    userId: target.actor.id,
    limit,
    logger: deps.logger,
  });
  if (!slot) {
    logSlotRefusal(deps.logger, "vnc", { actor_id: target.actor.id, host_id: target.host.id, limit });
    throw TooManyConnections("desktop WebSockets", limit);
  }
  try {
    await bridgeWithSlot(deps, req, client, head, target, path, slot);
  } catch (err) {
    slot.release();
    throw err;
  }
}

async function bridgeWithSlot(
  deps: ApiDeps,
  req: IncomingMessage,
  client: Socket,
  head: Buffer,
  target: VncTarget,
  path: NonNullable<ReturnType<typeof parseVncPath>> & { upstreamPath: string },
  slot: ConnectionSlot,
): Promise<void> {
  // The client may have gone while the slot was taken: nothing will close it later.
  if (client.destroyed) return slot.release();
  client.once("close", () => slot.release());
  const upstream = await dial(target);
  const requestHead =
    `GET ${target.upstreamUrl} HTTP/1.1\r\n` +
    serialiseHeaders(forwardRequestHeaders(pairs(req.rawHeaders), `${target.address}:${target.port}`, { upgrade: true })) +
    "\r\n";
  upstream.write(requestHead);
  if (head.length) upstream.write(head);

  const { status, headers, rest } = await readResponseHead(upstream).catch((err: unknown) => {
    upstream.destroy();
    throw err;
  });
  const upgraded = status === 101;
  const out = forwardResponseHeaders(headers, { upgrade: upgraded });
  if (!upgraded) out.push(["connection", "close"]);
  client.write(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\n${serialiseHeaders(out)}\r\n`);
  if (rest.length) client.write(rest);
  if (!upgraded) {
    // A refused upgrade (e.g. 404 from the host): pass its body on, then close.
    upstream.pipe(client);
    client.once("close", () => upstream.destroy());
    return;
  }
  pipeSession(deps, target, path.portal, client, upstream, rest.length, clientAddress(deps, req));
}

/** The client address of an upgrade, by the same rules as any request's (api/http/client-ip.ts). */
function clientAddress(deps: ApiDeps, req: IncomingMessage): string | null {
  try {
    const header = (name: string) => {
      const v = req.headers[name.toLowerCase()];
      return Array.isArray(v) ? v.join(",") : v;
    };
    return deps.clientIp({ env: { incoming: req }, req: { header } } as never);
  } catch {
    return req.socket.remoteAddress ?? null;
  }
}

/** Both directions piped (pipe() pauses the faster side: bounded memory), counted and audited. */
function pipeSession(
  deps: ApiDeps,
  target: VncTarget,
  portal: "admin" | "user",
  client: Socket,
  upstream: Socket,
  alreadyOut: number,
  sourceIp: string | null,
): void {
  const started = Date.now();
  // Counted from the sockets' own counters at the end: no per-chunk work on the hot path.
  const upstreamReadBefore = upstream.bytesRead - alreadyOut;
  const clientReadBefore = client.bytesRead;
  // ccp_desktop_bytes_total reads the same counters when scraped (and once more at the end).
  const untrackBytes = deps.metrics.desktopBytes.track(() => ({
    in: client.bytesRead - clientReadBefore,
    out: upstream.bytesRead - upstreamReadBefore,
  }));
  let closeReason = "closed";
  // The session's record (docs/sessions.md): one row per desktop WebSocket, filed under the
  // host's owner; `login` names who opened it (an admin opening a user's desktop shows as the admin).
  const recordId = randomUUID();
  const counters = () => ({ bytesIn: client.bytesRead - clientReadBefore, bytesOut: upstream.bytesRead - upstreamReadBefore });
  deps.records.open(
    {
      id: recordId,
      kind: "desktop",
      hostId: target.host.id,
      userId: target.host.userId,
      login: target.actor.username,
      method: portal,
      sourceIp,
      recording: "off",
      startedAt: new Date(started),
    },
    counters,
  );
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  client.pipe(upstream);
  upstream.pipe(client);

  const session = deps.vnc.add({
    portal,
    actorId: target.actor.id,
    userId: target.host.userId,
    hostId: target.host.id,
    check: target.check,
    close: (reason) => {
      closeReason = reason;
      client.destroy();
      upstream.destroy();
    },
  });
  const meta = { actorId: target.actor.id, userId: target.host.userId, hostId: target.host.id };
  deps.logger.info({ host_id: target.host.id, actor_id: target.actor.id }, "VNC session opened");
  void recordEvent(deps.db, { type: "vnc.session.opened", message: `VNC session opened by ${target.actor.username}`, ...meta }).catch(() => {});

  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    untrackBytes();
    deps.vnc.remove(session);
    client.destroy();
    upstream.destroy();
    const metadata = {
      bytes_in: client.bytesRead - clientReadBefore,
      bytes_out: upstream.bytesRead - upstreamReadBefore,
      duration_ms: Date.now() - started,
      reason: closeReason,
    };
    deps.logger.info({ host_id: target.host.id, ...metadata }, "VNC session closed");
    void deps.records.close(recordId, { endedAt: new Date(), ...counters(), endReason: endReasonOf(closeReason) });
    void recordEvent(deps.db, { type: "vnc.session.closed", message: "VNC session closed", ...meta, metadata }).catch(() => {});
  };
  // A natural end stays `closed`: in the WebSocket close handshake the server closes the TCP
  // connection whichever side asked, so which socket closed first does not say who ended it.
  client.once("close", finish);
  upstream.once("close", finish);
  client.on("error", () => client.destroy());
  upstream.on("error", () => upstream.destroy());
}

/** VNC close reasons in the words of session records (docs/sessions.md#end-reasons). */
function endReasonOf(reason: string): string {
  return reason === "shutdown" ? "proxy_shutdown" : reason;
}

function dial(target: VncTarget): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: target.address, port: target.port });
    const timer = setTimeout(() => socket.destroy(new Error("timeout")), VNC_DIAL_TIMEOUT_MS);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(socket);
    });
    socket.once("error", () => {
      clearTimeout(timer);
      socket.destroy();
      reject(BadGateway());
    });
  });
}

/** Read the host's response head; a reset, a timeout or garbage before it ends is a 502. */
function readResponseHead(upstream: Socket): Promise<{ status: number; headers: [string, string][]; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => done(BadGateway()), VNC_DIAL_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) {
        if (buf.length > MAX_UPSTREAM_HEAD) done(BadGateway());
        return;
      }
      const lines = buf.subarray(0, end).toString("latin1").split("\r\n");
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "");
      if (!m) return done(BadGateway());
      const headers: [string, string][] = [];
      for (const line of lines.slice(1)) {
        const i = line.indexOf(":");
        if (i > 0) headers.push([line.slice(0, i).trim(), line.slice(i + 1).trim()]);
      }
      done(null, { status: Number(m[1]), headers, rest: buf.subarray(end + 4) });
    };
    const onEnd = () => done(BadGateway());
    function done(err: ServiceError | null, value?: { status: number; headers: [string, string][]; rest: Buffer }) {
      clearTimeout(timer);
      upstream.off("data", onData);
      upstream.off("error", onEnd);
      upstream.off("close", onEnd);
      upstream.pause();
      if (err) reject(err);
      else resolve(value!);
    }
    upstream.on("data", onData);
    upstream.once("error", onEnd);
    upstream.once("close", onEnd);
  });
}

function writeError(socket: Duplex, err: ServiceError, pathname: string): void {
  const { status, body, headers } = errorEnvelope(err, pathname);
  writeRaw(socket, status, body, headers);
}

function writeRaw(socket: Duplex, status: number, body: unknown, headers: Record<string, string>): void {
  if (socket.destroyed) return;
  const text = JSON.stringify(body);
  const head = serialiseHeaders([
    ["content-type", "application/json; charset=utf-8"],
    ["content-length", String(Buffer.byteLength(text))],
    ["connection", "close"],
    ...Object.entries(headers),
  ]);
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\n${head}\r\n${text}`);
}

/**
 * Hand an upgrade request that is not a VNC WebSocket to the ordinary request handler. Node has
 * already detached its HTTP parser from the socket, so the connection closes after this response.
 */
function serveAsPlainRequest(server: Server, req: IncomingMessage, socket: Socket, head: Buffer): void {
  if (head.length) socket.unshift(head);
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket);
  res.once("finish", () => {
    res.detachSocket(socket);
    socket.destroySoon();
  });
  server.emit("request", req, res);
}
