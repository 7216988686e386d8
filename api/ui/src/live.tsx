import { createContext, type ReactNode, useContext, useEffect, useRef, useState } from "react";
import { getSession, logout, type Session } from "./api";
import type { LiveHostAdminView, LiveHostUserView, LiveTaskUserView, TaskView } from "../../../shared/views/index.js";

/**
 * Live updates from GET /v1/admin/sse or /v1/user/sse. The stream is read with fetch and a body
 * reader, not EventSource: EventSource cannot send an Authorization header, and a token in the
 * URL would end up in logs and history. When the stream fails the UI polls (every page reloads
 * its data on a `tick`) and keeps trying to reconnect with backoff.
 */

export type LiveStatus = "connecting" | "live" | "polling";

export type LiveMessage =
  | { type: "resync" } // stream (re)connected, or a polling tick: reload everything shown
  | { type: "task"; data: LiveTask }
  | { type: "host"; data: LiveHostAdminView | LiveHostUserView }
  | { type: "host_removed"; data: { id: string } };

/** A `task` event: the full task on an admin stream, the task without its requester, egress or result on a user's. */
export type LiveTask = TaskView | LiveTaskUserView;

type Listener = (m: LiveMessage) => void;

interface LiveApi {
  status: LiveStatus;
  subscribe(fn: Listener): () => void;
}

const LiveContext = createContext<LiveApi>({ status: "connecting", subscribe: () => () => {} });

const POLL_MS = 5000;

/** Split an SSE byte stream into events (`event:` + `data:` lines, blank-line separated). */
export function parseSse(buffer: string): { events: { event: string; data: string }[]; rest: string } {
  const events: { event: string; data: string }[] = [];
  const normalized = buffer.replace(/\r\n/g, "\n");
  let rest = normalized;
  let cut: number;
  while ((cut = rest.indexOf("\n\n")) >= 0) {
    const block = rest.slice(0, cut);
    rest = rest.slice(cut + 2);
    let event = "message";
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue; // comment (heartbeat)
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (data.length) events.push({ event, data: data.join("\n") });
  }
  return { events, rest };
}

export function LiveProvider({ session, children }: { session: Session; children: ReactNode }) {
  const [status, setStatus] = useState<LiveStatus>("connecting");
  const listeners = useRef(new Set<Listener>());
  const api = useRef<LiveApi>({
    status: "connecting",
    subscribe(fn) {
      listeners.current.add(fn);
      return () => listeners.current.delete(fn);
    },
  });

  useEffect(() => {
    const emit = (m: LiveMessage) => {
      for (const l of [...listeners.current]) {
        try {
          l(m);
        } catch (err) {
          console.error("live listener failed", err);
        }
      }
    };
    const path = session.role === "admin" ? "/v1/admin/sse" : "/v1/user/sse";
    let stopped = false;
    let controller: AbortController | null = null;
    let pollTimer: number | undefined;
    let retryTimer: number | undefined;
    let failures = 0;

    const startPolling = () => {
      setStatus("polling");
      if (pollTimer !== undefined) return;
      pollTimer = window.setInterval(() => emit({ type: "resync" }), POLL_MS);
    };
    const stopPolling = () => {
      if (pollTimer !== undefined) window.clearInterval(pollTimer);
      pollTimer = undefined;
    };

    const connect = async () => {
      const s = getSession();
      if (stopped || !s) return;
      controller = new AbortController();
      let gotReady = false;
      try {
        const res = await fetch(path, {
          headers: { authorization: `Bearer ${s.token}`, accept: "text/event-stream" },
          signal: controller.signal,
          cache: "no-store",
        });
        if (res.status === 401) {
          logout("Your session has ended. Please log in again.");
          return;
        }
        if (!res.ok || !res.body) throw new Error(`stream answered ${res.status}`);
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          const parsed = parseSse(buffer);
          buffer = parsed.rest;
          for (const ev of parsed.events) {
            let data: unknown;
            try {
              data = JSON.parse(ev.data);
            } catch {
              continue;
            }
            if (ev.event === "ready") {
              gotReady = true;
              failures = 0;
              stopPolling();
              setStatus("live");
              emit({ type: "resync" });
            } else if (ev.event === "revoked") {
              logout("Your session has ended (access revoked or password changed). Please log in again.");
              return;
            } else if (ev.event === "task" || ev.event === "host" || ev.event === "host_removed") {
              emit({ type: ev.event, data } as LiveMessage);
            }
          }
        }
      } catch (err) {
        if (stopped) return;
        console.warn("live updates: stream failed, polling instead", err);
      }
      if (stopped) return;
      // The stream ended or failed: poll until it is back. Backoff 2 s, 4 s … 30 s.
      if (!gotReady) failures++;
      startPolling();
      const delay = Math.min(30_000, 2000 * 2 ** Math.min(failures, 4));
      retryTimer = window.setTimeout(() => void connect(), delay);
    };

    void connect();
    return () => {
      stopped = true;
      controller?.abort();
      stopPolling();
      if (retryTimer !== undefined) window.clearTimeout(retryTimer);
    };
    // A new token (password change) revokes the old one: reconnect with it.
  }, [session.token, session.role]);

  api.current.status = status;
  return <LiveContext.Provider value={{ status, subscribe: api.current.subscribe }}>{children}</LiveContext.Provider>;
}

export function useLiveStatus(): LiveStatus {
  return useContext(LiveContext).status;
}

/** Receive every live message while mounted. */
export function useLive(fn: Listener): void {
  const { subscribe } = useContext(LiveContext);
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => subscribe((m) => ref.current(m)), [subscribe]);
}

/**
 * Reload a page's data when something it shows may have changed: on (re)connect and polling
 * ticks, and (debounced) on live messages that `relevant` accepts.
 */
export function useLiveReload(reload: () => void, relevant: (m: LiveMessage) => boolean = () => true, delayMs = 400): void {
  const timer = useRef<number | undefined>(undefined);
  useEffect(() => () => window.clearTimeout(timer.current), []);
  useLive((m) => {
    if (m.type === "resync") {
      reload();
      return;
    }
    if (!relevant(m)) return;
    window.clearTimeout(timer.current);
    timer.current = window.setTimeout(reload, delayMs);
  });
}
