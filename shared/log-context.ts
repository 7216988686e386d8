import { AsyncLocalStorage } from "node:async_hooks";
import { randomUUID } from "node:crypto";

/**
 * The fields that say which operation a log line belongs to (docs/operations.md#logs). Every
 * logger made by shared/logger.ts adds the current context's fields to each line it writes, so a
 * line logged deep inside service, flow or runtime code through the process logger carries them
 * too: no call site has to remember to pass a child logger down.
 */
export interface LogContext {
  /** The HTTP request (X-Request-Id), or the scheduler run, that started the operation. */
  request_id?: string;
  /** In the worker, the task being processed. */
  task_id?: string;
  /** The task kind, or the scheduler job's name. */
  kind?: string;
  host_id?: string;
}

const storage = new AsyncLocalStorage<Readonly<LogContext>>();

/**
 * Run `fn` with `fields` added to the current context (inner fields win); everything it awaits,
 * and the timers and promises it starts, see them. Null and undefined fields are left out.
 */
export function withLogContext<T>(fields: { [K in keyof LogContext]?: LogContext[K] | null }, fn: () => T): T {
  const merged: Record<string, string> = { ...storage.getStore() };
  for (const [k, v] of Object.entries(fields)) if (v !== undefined && v !== null) merged[k] = v;
  return storage.run(Object.freeze(merged), fn);
}

/**
 * Run `fn` outside any operation's context: for process-wide work that one operation happens to
 * start (a shared poll loop started by its first subscriber's request), whose lines, and the
 * timers it schedules, must not carry that operation's id forever.
 */
export function withoutLogContext<T>(fn: () => T): T {
  return storage.exit(fn);
}

/** The context of the running code (undefined outside any operation). */
export function currentLogContext(): Readonly<LogContext> | undefined {
  return storage.getStore();
}

/**
 * A fresh request id: what the API gives a request without a usable X-Request-Id, and what each
 * scheduler run gets, so system work correlates the same way (README "Observability").
 */
export function newRequestId(): string {
  return randomUUID();
}
