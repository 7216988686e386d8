/**
 * The API client. The session token lives in this module's memory only: never in localStorage,
 * sessionStorage or a cookie, where any page of this origin (including content a host serves
 * through the VNC proxy, docs/api.md#vnc-proxy) could read it. A reload therefore logs out.
 */

export type Role = "admin" | "user";

export interface Session {
  token: string;
  role: Role;
  username: string;
  /** ms since epoch */
  expiresAt: number;
}

let session: Session | null = null;
const listeners = new Set<(s: Session | null, reason?: string) => void>();

export function getSession(): Session | null {
  return session;
}

export function setSession(next: Session | null, reason?: string): void {
  session = next;
  for (const l of listeners) l(next, reason);
}

/** Replace the token (change-password answers a fresh one and revokes the old). */
export function replaceToken(token: string, expiresIn: number): void {
  if (!session) return;
  setSession({ ...session, token, expiresAt: Date.now() + expiresIn * 1000 });
}

export function onSessionChange(fn: (s: Session | null, reason?: string) => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export interface ErrorDetail {
  field: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: ErrorDetail[] = [],
    readonly retryAfter?: number,
  ) {
    super(message);
  }
  /** The detail message for one field (`username`, `proxy_config.server_port`), if any. */
  field(name: string): string | undefined {
    return this.details.find((d) => d.field === name)?.message;
  }
}

export interface ApiResult<T> {
  status: number;
  body: T;
}

/**
 * One request. Non-2xx answers throw ApiError with the envelope's code (docs/api.md#errors).
 * A 401 on an authenticated call means the token was revoked or expired: the session ends.
 */
export async function request<T = unknown>(
  method: string,
  path: string,
  body?: unknown,
  opts: { auth?: boolean; signal?: AbortSignal } = {},
): Promise<ApiResult<T>> {
  const headers: Record<string, string> = { accept: "application/json" };
  const auth = opts.auth ?? true;
  const s = session;
  if (auth && s) headers.authorization = `Bearer ${s.token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: opts.signal,
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (err) {
    if ((err as Error).name === "AbortError") throw err;
    throw new ApiError(0, "network_error", "The server could not be reached. Check your connection and try again.");
  }
  const text = await res.text();
  let parsed: unknown = undefined;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
  }
  if (!res.ok) {
    const e = (parsed ?? {}) as { error?: string; code?: string; details?: ErrorDetail[]; retry_after?: number };
    const err = new ApiError(
      res.status,
      e.code ?? "http_error",
      e.error ?? `The server answered ${res.status}.`,
      Array.isArray(e.details) ? e.details : [],
      e.retry_after,
    );
    // Only a token the server no longer accepts ends the session (not a wrong old password).
    if (res.status === 401 && auth && s && session === s && err.code === "unauthorized") {
      setSession(null, "Your session has ended (signed out elsewhere, password changed or access revoked). Please log in again.");
    }
    throw err;
  }
  return { status: res.status, body: parsed as T };
}

export const api = {
  get: <T>(path: string, signal?: AbortSignal) => request<T>("GET", path, undefined, { signal }).then((r) => r.body),
  post: <T>(path: string, body?: unknown) => request<T>("POST", path, body),
  put: <T>(path: string, body?: unknown) => request<T>("PUT", path, body),
  patch: <T>(path: string, body?: unknown) => request<T>("PATCH", path, body),
  del: <T>(path: string) => request<T>("DELETE", path),
};

export async function login(username: string, password: string): Promise<Session> {
  const { body } = await request<{ token: string; role: Role; username: string; expires_in: number }>(
    "POST",
    "/v1/auth/login",
    { username, password },
    { auth: false },
  );
  const s: Session = { token: body.token, role: body.role, username: body.username, expiresAt: Date.now() + body.expires_in * 1000 };
  setSession(s);
  return s;
}

export function logout(reason?: string): void {
  setSession(null, reason);
}

/** Build a query string from the set values only. */
export function qs(params: Record<string, string | number | undefined | null>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : "";
}

/** A readable sentence for an error, whatever was thrown. */
export function describeError(err: unknown): string {
  if (err instanceof ApiError) {
    const detail = err.details.length ? ` (${err.details.map((d) => `${d.field}: ${d.message}`).join("; ")})` : "";
    return `${err.message}${detail}`;
  }
  return (err as Error)?.message ?? String(err);
}
