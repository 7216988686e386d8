import { createHash, timingSafeEqual } from "node:crypto";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from "node:http";
import { createServer as createTcpServer, isIP, type Server as TcpServer, type Socket } from "node:net";
import type { CheckdConfig } from "../shared/config/checkd.js";
import type { ListenAddr } from "../shared/config/fields.js";
import type { Logger } from "../shared/logger.js";
import { answerQuery, frame, TcpFramer, type ZoneOptions } from "./dns.js";
import { CanaryStore } from "./store.js";

/**
 * The egress check service (README "Deploying the egress check service (checkd)"): what the
 * worker's checks talk to from inside an egress.
 *
 * HTTP (CHECKD_HTTP_LISTEN_ADDR):
 *   GET /ip             the caller's address, text/plain (EGRESS_ECHO_URL)
 *   GET /generate_204   204 (EGRESS_CHECK_URL)
 *   GET /healthz        200 "ok"
 *   GET /v1/canary/<name>  with `Authorization: Bearer <CHECKD_API_SECRET>`:
 *                       {"name","sources":["203.0.113.20"],"queries":[{address,first_seen,last_seen,count}]}
 *                       (EGRESS_DNS_CANARY_API; an unknown name answers sources [])
 * DNS (CHECKD_DNS_LISTEN_ADDR, UDP and TCP): authoritative for CHECKD_ZONE (checkd/dns.ts).
 */

export interface Checkd {
  httpPort: number;
  dnsPort: number;
  store: CanaryStore;
  stop(): Promise<void>;
}

/** `::ffff:203.0.113.20` (a dual-stack socket's view of an IPv4 client) → `203.0.113.20`. */
export function clientAddress(raw: string | undefined): string {
  const a = raw ?? "";
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  return m ? m[1]! : a;
}

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();

/** Constant-time `Authorization: Bearer <secret>` check (digests, so lengths do not leak either). */
export function bearerMatches(header: string | undefined, secret: string): boolean {
  const m = /^Bearer (.+)$/.exec(header ?? "");
  const given = digest(m ? m[1]! : "");
  const ok = timingSafeEqual(given, digest(secret));
  return ok && m !== null;
}

const CANARY_PATH = /^\/v1\/canary\/([^/]{1,253})$/;
const NAME = /^[a-z0-9_.-]{1,253}$/;

function send(res: ServerResponse, status: number, body: string, type = "text/plain; charset=utf-8"): void {
  res.writeHead(status, {
    "content-type": type,
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
  });
  res.end(body);
}

function httpHandler(cfg: CheckdConfig, store: CanaryStore, logger: Logger) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const src = clientAddress(req.socket.remoteAddress);
    const path = (req.url ?? "/").split("?")[0]!;
    res.on("finish", () => {
      if (cfg.CHECKD_LOG_REQUESTS) logger.info({ src, method: req.method, path, status: res.statusCode }, "http request");
    });
    if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, "method not allowed\n");
    if (path === "/ip" || path === "/") return send(res, 200, `${src}\n`);
    if (path === "/generate_204") {
      res.writeHead(204, { "cache-control": "no-store" });
      return res.end();
    }
    if (path === "/healthz") return send(res, 200, "ok\n");
    const m = CANARY_PATH.exec(path);
    if (m) {
      // Who asked for which name is the evidence of a leak, and so the secret of the tenants
      // behind the egress: only the worker (holder of the shared secret) may read it.
      if (!bearerMatches(req.headers.authorization, cfg.CHECKD_API_SECRET)) {
        res.setHeader("www-authenticate", 'Bearer realm="checkd"');
        return send(res, 401, JSON.stringify({ error: "a valid bearer token is required", code: "unauthorized" }), "application/json");
      }
      let name: string;
      try {
        name = decodeURIComponent(m[1]!).toLowerCase().replace(/\.$/, "");
      } catch {
        name = "";
      }
      if (!NAME.test(name)) {
        return send(res, 400, JSON.stringify({ error: "not a DNS name", code: "invalid_name" }), "application/json");
      }
      const seen = store.lookup(name);
      const sources = seen?.sources ?? [];
      const body = { name, sources: sources.map((s) => s.address), queries: sources, dropped_sources: seen?.dropped ?? 0 };
      return send(res, 200, JSON.stringify(body), "application/json");
    }
    return send(res, 404, "not found\n");
  };
}

function bindHost(addr: ListenAddr): string {
  return addr.host ?? "0.0.0.0";
}

async function listenTcp(server: HttpServer | TcpServer, addr: ListenAddr): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(addr.port, bindHost(addr), () => {
      server.off("error", reject);
      resolve();
    });
  });
  return (server.address() as { port: number }).port;
}

async function listenUdp(addr: ListenAddr, onMessage: (msg: Buffer, rinfo: { address: string; port: number }, sock: UdpSocket) => void): Promise<UdpSocket> {
  const host = bindHost(addr);
  const sock = createSocket({ type: isIP(host) === 6 ? "udp6" : "udp4" });
  sock.on("message", (msg, rinfo) => onMessage(msg, rinfo, sock));
  await new Promise<void>((resolve, reject) => {
    sock.once("error", reject);
    sock.bind(addr.port, host, () => {
      sock.off("error", reject);
      resolve();
    });
  });
  return sock;
}

/** Start the HTTP and DNS listeners. `dnsPort` 0 in CHECKD_DNS_LISTEN_ADDR picks one free port for UDP and TCP. */
export async function startCheckd(cfg: CheckdConfig, logger: Logger): Promise<Checkd> {
  const store = new CanaryStore({
    maxNames: cfg.CHECKD_MAX_NAMES,
    maxSourcesPerName: cfg.CHECKD_MAX_SOURCES_PER_NAME,
    ttlMs: cfg.CHECKD_RECORD_TTL_SECONDS * 1000,
  });
  const zone: ZoneOptions = {
    zone: cfg.CHECKD_ZONE,
    answerIpv4: cfg.CHECKD_ANSWER_IPV4,
    answerIpv6: cfg.CHECKD_ANSWER_IPV6,
    nsName: cfg.CHECKD_NS_NAME,
    record: (name, source) => store.record(name, source),
  };
  const logQuery = (proto: "udp" | "tcp", src: string, port: number, query: Buffer) => {
    if (cfg.CHECKD_LOG_REQUESTS) logger.info({ proto, src, src_port: port, bytes: query.length }, "dns query");
  };

  const http = createHttpServer({ headersTimeout: 10_000, requestTimeout: 15_000, maxHeaderSize: 8192 }, httpHandler(cfg, store, logger));
  http.keepAliveTimeout = 5_000;
  http.maxConnections = 1024;
  http.on("clientError", (_err, socket) => socket.destroy());

  // TCP first: with port 0 it picks the port, and UDP then binds the same number.
  const tcpSockets = new Set<Socket>();
  const tcp = createTcpServer((sock) => {
    if (tcpSockets.size >= cfg.CHECKD_MAX_TCP_CONNECTIONS) {
      sock.destroy();
      return;
    }
    tcpSockets.add(sock);
    sock.on("close", () => tcpSockets.delete(sock));
    sock.on("error", () => sock.destroy());
    sock.setTimeout(10_000, () => sock.destroy());
    const src = clientAddress(sock.remoteAddress);
    const framer = new TcpFramer();
    sock.on("data", (chunk: Buffer) => {
      for (const msg of framer.push(chunk)) {
        logQuery("tcp", src, sock.remotePort ?? 0, msg);
        const answer = answerQuery(msg, src, zone);
        if (!answer) {
          sock.destroy();
          return;
        }
        sock.write(frame(answer));
        // A client that sends queries but never reads the answers is not allowed to pile them up here.
        if (sock.writableLength > 256 * 1024) {
          sock.destroy();
          return;
        }
      }
    });
  });
  const dnsPort = await listenTcp(tcp, cfg.CHECKD_DNS_LISTEN_ADDR);
  const udp = await listenUdp({ host: cfg.CHECKD_DNS_LISTEN_ADDR.host, port: dnsPort }, (msg, rinfo, sock) => {
    const src = clientAddress(rinfo.address);
    logQuery("udp", src, rinfo.port, msg);
    const answer = answerQuery(msg, src, zone);
    if (answer) sock.send(answer, rinfo.port, rinfo.address);
  });
  udp.on("error", (err) => logger.warn({ err: err.message }, "dns udp socket error"));
  const httpPort = await listenTcp(http, cfg.CHECKD_HTTP_LISTEN_ADDR);
  logger.info({ http_port: httpPort, dns_port: dnsPort, zone: cfg.CHECKD_ZONE }, "checkd listening");

  return {
    httpPort,
    dnsPort,
    store,
    async stop() {
      for (const s of tcpSockets) s.destroy();
      http.closeAllConnections();
      await Promise.all([
        new Promise<void>((r) => http.close(() => r())),
        new Promise<void>((r) => tcp.close(() => r())),
        new Promise<void>((r) => udp.close(() => r())),
      ]);
    },
  };
}
