import type { createApp } from "../../api/app.js";

/**
 * A live-update stream (GET /v1/admin/sse, /v1/user/sse) read the way the web UI reads it — fetch
 * and a body reader, never EventSource — from an in-process app. Each event keeps the moment it
 * was parsed (performance.now()), for the latency bench.
 */

export interface SseEvent {
  event: string;
  data: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  at: number;
}

export interface SseClient {
  /** The response's headers (the stream's content type and caching are part of the contract). */
  headers: Headers;
  events: SseEvent[];
  raw(): string;
  /** The stream has ended (by the server, or by close()). */
  ended(): boolean;
  /** Resolves true when the server ends the stream within `timeoutMs`, else false. */
  closedByServer(timeoutMs: number): Promise<boolean>;
  waitFor(what: string, pred: (e: SseEvent) => boolean, timeoutMs?: number): Promise<SseEvent>;
  ready(): Promise<SseEvent>;
  /** Called for every event as it is parsed. */
  onEvent: ((e: SseEvent) => void) | null;
  close(): Promise<void>;
}

export async function openSse(app: ReturnType<typeof createApp>, path: string, token: string): Promise<SseClient> {
  const res = await app.request(path, { headers: { authorization: `Bearer ${token}` } }, { incoming: { socket: { remoteAddress: "127.0.0.1" } } });
  if (res.status !== 200) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const events: SseEvent[] = [];
  let raw = "";
  let buffer = "";
  let ended = false;
  const waiters = new Set<() => void>();
  const client: SseClient = {
    headers: res.headers,
    events,
    raw: () => raw,
    ended: () => ended,
    closedByServer: (timeoutMs) =>
      Promise.race([pump.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs))]),
    onEvent: null,
    async waitFor(what, pred, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = events.find(pred);
        if (found) return found;
        if (ended) throw new Error(`stream ended before ${what}; got ${JSON.stringify(events)}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no ${what} within ${timeoutMs} ms; got ${JSON.stringify(events)}`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left);
          const w = () => {
            clearTimeout(t);
            waiters.delete(w);
            resolve();
          };
          waiters.add(w);
        });
      }
    },
    ready: () => client.waitFor("ready", (e) => e.event === "ready"),
    async close() {
      await reader.cancel().catch(() => {});
      await pump;
    },
  };
  const pump = (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        const text = decoder.decode(value, { stream: true });
        raw += text;
        buffer += text;
        let cut: number;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let event = "message";
          let data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) event = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          if (!data) continue;
          const e = { event, data: JSON.parse(data), at: performance.now() };
          events.push(e);
          client.onEvent?.(e);
        }
        for (const w of waiters) w();
      }
    } catch {
      // canceled by the caller
    } finally {
      ended = true;
      for (const w of waiters) w();
    }
  })();
  return client;
}
