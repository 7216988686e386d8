import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { ListenAddr } from "../config/fields.js";
import type { Logger } from "../logger.js";
import type { Registry } from "./registry.js";

export interface MetricsServer {
  /** The bound port (useful with `:0`). */
  port: number;
  close(): Promise<void>;
}

/**
 * `GET /metrics` on a listen address of its own (METRICS_LISTEN_ADDR, WORKER_METRICS_LISTEN_ADDR,
 * SSHD_METRICS_LISTEN_ADDR), without authentication: the address is the protection, so it belongs
 * on loopback or a private network the scraper shares (README "Observability"). Nothing else is
 * served there.
 */
export async function serveMetrics(registry: Registry, addr: ListenAddr, logger: Logger, what: string): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/metrics") {
      res.writeHead(404, { "content-type": "application/json; charset=utf-8" });
      res.end(JSON.stringify({ error: "no such route", code: "not_found" }));
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { "content-type": "application/json; charset=utf-8", allow: "GET" });
      res.end(JSON.stringify({ error: `method ${req.method} is not allowed on this path`, code: "method_not_allowed" }));
      return;
    }
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { "content-type": registry.contentType, "cache-control": "no-store" });
        res.end(req.method === "HEAD" ? undefined : text);
      },
      (err: unknown) => {
        logger.error({ err }, "metrics collection failed");
        res.writeHead(500, { "content-type": "application/json; charset=utf-8" });
        res.end(JSON.stringify({ error: "internal error", code: "internal_error" }));
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(addr.port, addr.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  logger.info({ host: addr.host ?? "*", port }, `${what} metrics listening`);
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
