import type { Db } from "../../shared/db/client.js";
import type { TaskRow } from "../../shared/db/schema/index.js";
import { withoutLogContext } from "../../shared/log-context.js";
import type { Logger } from "../../shared/logger.js";
import { type HostState, loadHostStates, loadTaskChanges } from "../../shared/services/live/changes.js";
import { renderTask } from "../../shared/services/tasks/render.js";
import type { LiveHostAdminView, LiveHostUserView, LiveTaskUserView } from "../../shared/views/index.js";

/**
 * One poller per API process behind every live-update stream: it reads Postgres, whatever the
 * number of open streams, diffs the result against the previous poll and hands each change to the
 * subscribers allowed to see it. It runs only while someone listens.
 *
 * When it polls (docs/architecture.md#live-updates): at once whenever a writer announces a change
 * (`listen`, Redis pub/sub, shared/services/live/notify.ts), and every `pollMs` in any case, so
 * that a lost notification, a writer that announces nothing or a Redis outage only delays. Polls
 * never overlap: notifications that arrive during one coalesce into a single poll right after it.
 * The notification is only a trigger: what is delivered, and to whom, always comes from the poll.
 *
 * Tenant filter: a user subscriber receives a host change only for a host it owns and a task
 * change only for a task of such a host, and the user-side payloads carry no id of anyone else
 * (no `requested_by`, no egress or binding ids).
 */

export type LiveAudience = { kind: "admin" } | { kind: "user"; userId: string };
export type LiveEventName = "task" | "host" | "host_removed";
export type LiveSend = (event: LiveEventName, data: unknown) => void;

export interface LiveSubscriber {
  send: LiveSend;
  /**
   * Runs once the poller has a baseline: every change after it is delivered, so a client that
   * (re)loads its data after `ready` misses nothing.
   */
  ready: () => void;
  /** The hub is shutting down: end the stream. */
  close: () => void;
}

export interface LiveHub {
  /** Start receiving changes; returns the unsubscribe function. */
  subscribe(audience: LiveAudience, subscriber: LiveSubscriber): () => void;
  /** Number of open subscriptions. */
  size(): number;
  /** Stop polling and end every stream (process shutdown). */
  close(): void;
}

/** Ownership of removed hosts is kept this long, so that their final task updates still reach the owner. */
const REMOVED_HOST_MEMORY_MS = 10 * 60_000;

interface Subscriber {
  audience: LiveAudience;
  send: LiveSend;
  onReady: (() => void) | null;
  close: () => void;
}

export function adminHostView(h: HostState): LiveHostAdminView {
  return {
    id: h.id,
    user_id: h.userId,
    short_id: h.shortId,
    status: h.status,
    desired_state: h.desiredState,
    updated_at: h.updatedAt.toISOString(),
  };
}

/** The portal host object has no desired_state (docs/api.md#hosts). */
export function userHostView(h: HostState): LiveHostUserView {
  return { id: h.id, short_id: h.shortId, status: h.status, updated_at: h.updatedAt.toISOString() };
}

/** A user's own task without who requested it (that may be the admin, with their request id) or egress/result data. */
export function userTaskView(t: TaskRow): LiveTaskUserView {
  const { requested_by: _r, request_id: _q, egress_ip_id: _e, result: _res, cancel_requested: _c, ...rest } = renderTask(t);
  return rest;
}

const hostFingerprint = (h: HostState) => `${h.status}|${h.desiredState}|${h.updatedAt.getTime()}`;
const taskFingerprint = (t: TaskRow) =>
  JSON.stringify([t.status, t.attempt, t.progressPercent, t.progressMessage, t.errorCode, t.cancelRequested, t.steps]);

/**
 * Start listening for change notifications, calling `onChange` for each; returns the stop
 * function. The hub listens only while it has subscribers.
 */
export type LiveListen = (onChange: () => void) => () => void;

export function createLiveHub(opts: { db: Db; logger: Logger; pollMs: number; listen?: LiveListen }): LiveHub {
  const subs = new Set<Subscriber>();
  let timer: NodeJS.Timeout | null = null;
  let running = false;
  let closed = false;
  // A notification arrived while a poll ran: poll again as soon as it ends.
  let again = false;
  let stopListening: (() => void) | null = null;

  // State of the previous poll; reset whenever the last subscriber leaves.
  let baseline = false;
  let hostsById = new Map<string, { state: HostState; fp: string }>();
  let removedOwners = new Map<string, { userId: string; at: number }>();
  let taskFps = new Map<string, string>();
  let activeTaskIds: string[] = [];

  const reset = () => {
    baseline = false;
    hostsById = new Map();
    removedOwners = new Map();
    taskFps = new Map();
    activeTaskIds = [];
  };

  const ownerOf = (hostId: string | null): string | null => {
    if (!hostId) return null;
    return hostsById.get(hostId)?.state.userId ?? removedOwners.get(hostId)?.userId ?? null;
  };

  const deliver = (event: LiveEventName, forAdmin: () => unknown, owner: string | null, forUser: () => unknown) => {
    let adminData: unknown;
    let userData: unknown;
    for (const s of subs) {
      if (s.onReady) continue; // not yet at the baseline: the client will reload after `ready`
      try {
        if (s.audience.kind === "admin") s.send(event, (adminData ??= forAdmin()));
        else if (owner !== null && s.audience.userId === owner) s.send(event, (userData ??= forUser()));
      } catch (err) {
        opts.logger.warn({ err: (err as Error).message }, "live update could not be delivered");
      }
    }
  };

  async function poll(): Promise<void> {
    const emit = baseline;
    // Hosts first, so that the owner of a host created in this interval is known for its tasks.
    const hostRows = await loadHostStates(opts.db);
    const seen = new Set<string>();
    for (const h of hostRows) {
      seen.add(h.id);
      const fp = hostFingerprint(h);
      const prev = hostsById.get(h.id);
      hostsById.set(h.id, { state: h, fp });
      if (emit && prev?.fp !== fp) deliver("host", () => adminHostView(h), h.userId, () => userHostView(h));
    }
    const now = Date.now();
    for (const [id, prev] of hostsById) {
      if (seen.has(id)) continue;
      hostsById.delete(id);
      removedOwners.set(id, { userId: prev.state.userId, at: now });
      if (emit) deliver("host_removed", () => ({ id }), prev.state.userId, () => ({ id }));
    }
    for (const [id, r] of removedOwners) if (now - r.at > REMOVED_HOST_MEMORY_MS) removedOwners.delete(id);

    const taskRows = await loadTaskChanges(opts.db, activeTaskIds);
    const nextFps = new Map<string, string>();
    const nextActive: string[] = [];
    for (const t of taskRows) {
      const fp = taskFingerprint(t);
      nextFps.set(t.id, fp);
      if (t.status === "pending" || t.status === "running") nextActive.push(t.id);
      if (emit && taskFps.get(t.id) !== fp) deliver("task", () => renderTask(t), ownerOf(t.hostId), () => userTaskView(t));
    }
    // Rows no longer returned are terminal and old: they cannot change again, so forgetting them is safe.
    taskFps = nextFps;
    activeTaskIds = nextActive;

    baseline = true;
    for (const s of subs) {
      if (!s.onReady) continue;
      const ready = s.onReady;
      s.onReady = null;
      ready();
    }
  }

  const schedule = () => {
    if (closed || subs.size === 0 || timer || running) return;
    // The poll serves every subscriber: its timer (and so its lines) must not belong to the
    // request of whoever subscribed first (shared/log-context.ts).
    timer = withoutLogContext(() => setTimeout(tick, baseline && !again ? opts.pollMs : 0));
  };

  /** A writer announced a change: poll now (or right after the poll under way), not at the interval. */
  const kick = () => {
    if (closed || subs.size === 0) return;
    if (running) {
      again = true;
      return;
    }
    if (timer) clearTimeout(timer);
    timer = null;
    again = true;
    schedule();
  };

  const listen = () => {
    if (!opts.listen || stopListening || closed) return;
    try {
      stopListening = opts.listen(kick);
    } catch (err) {
      opts.logger.warn({ err: (err as Error).message }, "live-update notifications unavailable; polling only");
    }
  };
  const unlisten = () => {
    stopListening?.();
    stopListening = null;
  };

  async function tick(): Promise<void> {
    timer = null;
    if (subs.size === 0) return;
    running = true;
    again = false;
    try {
      await poll();
    } catch (err) {
      // Postgres away: keep the streams open and try again; clients keep their last state.
      opts.logger.warn({ err: (err as Error).message }, "live update poll failed");
    } finally {
      running = false;
    }
    if (subs.size === 0) reset();
    schedule();
  }

  return {
    subscribe(audience, subscriber) {
      if (closed) {
        subscriber.close();
        return () => {};
      }
      const sub: Subscriber = { audience, send: subscriber.send, onReady: subscriber.ready, close: subscriber.close };
      subs.add(sub);
      if (baseline && !running) {
        sub.onReady = null;
        subscriber.ready();
      }
      listen();
      schedule();
      return () => {
        subs.delete(sub);
        if (subs.size === 0) {
          if (timer) clearTimeout(timer);
          timer = null;
          unlisten();
          if (!running) reset();
        }
      };
    },
    size: () => subs.size,
    close() {
      closed = true;
      unlisten();
      if (timer) clearTimeout(timer);
      timer = null;
      const all = [...subs];
      subs.clear();
      for (const s of all) s.close();
    },
  };
}
