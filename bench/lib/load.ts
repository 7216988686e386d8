/**
 * A fixed-rate (open-loop) HTTP load generator for the API benches.
 *
 * Request i is due at t0 + i/rate whether or not earlier ones have been answered, and its latency
 * is measured from that due time to the last byte of the answer, so a stalled server shows up as
 * latency instead of as requests that were simply never sent ("coordinated omission", the flaw of
 * closed-loop generators that wait for an answer before sending the next request). Requests go
 * over a keep-alive pool of `connections` sockets; a request waiting for a free socket is waiting
 * on the server, and that wait counts.
 *
 * The generator runs in the bench's process, the server in another: the two do not share an event
 * loop. Service time (send → last byte) is reported next to the corrected latency, so a generator
 * that fell behind would be visible as a gap between the two and as `lateStarts`.
 */
import { Agent, request } from "node:http";

export interface LoadOptions {
  url: string;
  headers?: Record<string, string>;
  /** Requests per second. */
  rate: number;
  durationMs: number;
  connections: number;
}

export interface LoadResult {
  sent: number;
  ok: number;
  /** Non-2xx answers and transport errors, by status code or error code. */
  errors: Record<string, number>;
  /** Latency from the due time to the last byte, ms, one per answered request. */
  latency: number[];
  /** Send → last byte, ms. */
  service: number[];
  /** Requests sent more than 1 ms after they were due (the generator itself fell behind). */
  lateStarts: number;
  bytes: number;
  seconds: number;
}

/** A request not answered within this long counts as failed ("timeout"). */
const REQUEST_TIMEOUT_MS = 10_000;

export async function runFixedRate(o: LoadOptions): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: o.connections, maxFreeSockets: o.connections });
  const url = new URL(o.url);
  const total = Math.round((o.rate * o.durationMs) / 1000);
  const interval = 1000 / o.rate;
  const r: LoadResult = { sent: 0, ok: 0, errors: {}, latency: [], service: [], lateStarts: 0, bytes: 0, seconds: 0 };
  const pending = new Set<Promise<void>>();
  const fail = (k: string) => (r.errors[k] = (r.errors[k] ?? 0) + 1);

  const one = (due: number) =>
    new Promise<void>((resolve) => {
      const sentAt = performance.now();
      if (sentAt - due > 1) r.lateStarts++;
      let settled = false;
      const settle = (failure?: string) => {
        if (settled) return;
        settled = true;
        if (failure) fail(failure);
        resolve();
      };
      const req = request(
        { agent, host: url.hostname, port: url.port, path: url.pathname + url.search, method: "GET", headers: o.headers },
        (res) => {
          let n = 0;
          res.on("data", (d: Buffer) => (n += d.length));
          res.on("end", () => {
            const end = performance.now();
            if (res.statusCode! >= 200 && res.statusCode! < 300) {
              if (settled) return;
              r.ok++;
              r.bytes += n;
              r.latency.push(end - due);
              r.service.push(end - sentAt);
              settle();
            } else settle(String(res.statusCode));
          });
          res.on("error", (e: NodeJS.ErrnoException) => settle(e.code ?? "response_error"));
          res.on("close", () => settle(res.complete ? undefined : "aborted"));
        },
      );
      // An answer that never comes is a failure, not a hang of the whole bench.
      req.setTimeout(REQUEST_TIMEOUT_MS, () => {
        settle("timeout");
        req.destroy();
      });
      req.on("error", (e: NodeJS.ErrnoException) => settle(e.code ?? "request_error"));
      req.end();
    });

  const t0 = performance.now();
  let i = 0;
  while (i < total) {
    const now = performance.now();
    // Send everything that is due (a timer that fired late sends the backlog at once, each with
    // its own due time, so the delay is measured, not hidden).
    while (i < total && t0 + i * interval <= now) {
      const p = one(t0 + i * interval);
      pending.add(p);
      void p.then(() => pending.delete(p));
      r.sent++;
      i++;
    }
    const next = t0 + i * interval - performance.now();
    await new Promise((res) => setTimeout(res, Math.max(0, Math.floor(next))));
  }
  await Promise.all(pending);
  r.seconds = (performance.now() - t0) / 1000;
  agent.destroy();
  return r;
}
