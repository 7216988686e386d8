import { randomBytes } from "node:crypto";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { Writable } from "node:stream";
import { buildApiDeps } from "../../api/main.js";
import { serveVncWebSockets } from "../../api/vnc/websocket.js";
import { createApp } from "../../api/app.js";
import type { ApiDeps } from "../../api/deps.js";
import { type ApiConfig, parseApiConfig } from "../config/api.js";
import { loadEnvironment } from "../config/env-file.js";
import { createDatabase, type Database } from "../db/client.js";
import { createLogger } from "../logger.js";
import { createRedis, deletePrefixedKeys, waitForRedis } from "../redis.js";
import { createQueues, type Queues } from "../queue/queues.js";
import { seedAdmin } from "../services/auth/seed-admin.js";
import { contractViolation } from "./contract.js";
import { cloneTemplateDatabase } from "./databases.js";

export const TEST_ADMIN_PASSWORD = "admin-password-for-tests";
export const TEST_JWT_SECRET = "test-jwt-secret-that-is-at-least-32-bytes-long";
export const TEST_SECRETS_KEY = `v1:${Buffer.alloc(32, 7).toString("base64")}`;

export interface TestResponse {
  status: number;
  headers: Headers;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

/**
 * Every response request() receives is checked against the schema its route documents
 * (shared/test/contract.ts), so every integration suite is also the contract test of the routes it
 * calls. CONTRACT_CHECK=0 turns the check off (to see a suite's own failures first).
 */
const CONTRACT_CHECK = process.env.CONTRACT_CHECK !== "0";

export class ContractViolation extends Error {}

export interface RequestOptions {
  body?: unknown;
  /** Sent verbatim (not JSON-encoded). */
  rawBody?: string | Uint8Array;
  token?: string;
  headers?: Record<string, string>;
  /** The TCP peer address the app sees. */
  ip?: string;
}

/**
 * An API wired to a database of its own (cloned from the migrated template) and a Redis prefix of
 * its own, so test files never see each other's rows or counters. Every response body and log line
 * is kept, so suites can assert that no secret ever left the process.
 */
export interface ApiHarness {
  /** The BullMQ queues this app enqueues into (same Redis prefix); workers under test consume them. */
  queues: Queues;
  prefix: string;
  app: ReturnType<typeof createApp>;
  deps: ApiDeps;
  config: ApiConfig;
  database: Database;
  env: Record<string, string | undefined>;
  logs: string[];
  responses: string[];
  request(method: string, path: string, opts?: RequestOptions): Promise<TestResponse>;
  adminToken(): Promise<string>;
  login(username: string, password: string, ip?: string): Promise<TestResponse>;
  /** Create a user through the API; returns its id, credentials and a fresh token. */
  createUser(opts?: { username?: string; password?: string; expires_at?: string | null }): Promise<TestUser>;
  /**
   * Serve this app on 127.0.0.1 like api/main.ts does (VNC WebSocket upgrades, revocations
   * closing VNC sessions), for tests that need a real socket. Closed by close().
   */
  listen(port?: number): Promise<ListeningApi>;
  /** Build another app on the same database and Redis with different settings (e.g. a new JWT secret). */
  withConfig(overrides: Record<string, string>): Promise<ApiHarness>;
  close(): Promise<void>;
}

export interface ListeningApi {
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

export interface TestUser {
  id: string;
  username: string;
  password: string;
  token: string;
}

let userSeq = 0;
export const uniqueName = (stem = "user") => `${stem}${Date.now().toString(36)}${(userSeq++).toString(36)}${randomBytes(2).toString("hex")}`;

export async function createApiHarness(
  overrides: Record<string, string> = {},
  opts: { vncRecheckMs?: number } = {},
): Promise<ApiHarness> {
  const baseEnv = loadEnvironment();
  const db = await cloneTemplateDatabase(baseEnv);
  const prefix = `t${randomBytes(5).toString("hex")}`;
  const env: Record<string, string | undefined> = {
    ...baseEnv,
    DATABASE_URL: db.url,
    REDIS_PREFIX: prefix,
    ADMIN_USERNAME: "admin",
    ADMIN_PASSWORD: TEST_ADMIN_PASSWORD,
    ADMIN_JWT_SECRET: TEST_JWT_SECRET,
    SECRETS_KEY: TEST_SECRETS_KEY,
    SECRETS_KEY_PREVIOUS: "",
    PUBLIC_BASE_URL: "http://cloud.example.test:8080",
    TRUST_PROXY_CIDRS: "",
    LOG_LEVEL: "debug",
    // The warm pool stays off in every suite (its members are containers); pool tests turn it on.
    HOST_POOL_SIZE: "0",
    // Nor a spare egress-test gateway (a container too); test/docker/egress-test.test.ts turns it on.
    EGRESS_TEST_SPARE: "false",
    ...overrides,
  };
  const database = createDatabase(db.url, { max: 5 });
  const redis = createRedis(env.REDIS_URL ?? "redis://127.0.0.1:6379", { name: "ccp-test" });
  await waitForRedis(redis);
  const queueConnection = createRedis(env.REDIS_URL ?? "redis://127.0.0.1:6379", { name: "ccp-test-queues", forBullmq: true });
  const queues = createQueues(queueConnection, prefix);
  const logs: string[] = [];
  const responses: string[] = [];
  const closers: (() => Promise<void>)[] = [];

  const build = async (envFor: Record<string, string | undefined>): Promise<ApiHarness> => {
    const config = parseApiConfig(envFor);
    const sink = new Writable({
      write(chunk, _enc, cb) {
        logs.push(String(chunk));
        cb();
      },
    });
    const logger = createLogger({ level: "debug" }, sink);
    await seedAdmin(database.db, logger, { username: config.ADMIN_USERNAME, password: config.ADMIN_PASSWORD, now: new Date() });
    const deps = buildApiDeps(config, logger, { database, redis, queues, vncRecheckMs: opts.vncRecheckMs });
    const app = createApp(deps);
    let cachedAdminToken: string | undefined;

    const request = async (method: string, path: string, opts: RequestOptions = {}): Promise<TestResponse> => {
      const headers: Record<string, string> = { ...(opts.headers ?? {}) };
      if (opts.token) headers.authorization = `Bearer ${opts.token}`;
      let body: RequestInit["body"];
      if (method === "GET" || method === "HEAD") {
        // fetch forbids bodies on these methods; nothing to send.
      } else if (opts.rawBody !== undefined) body = opts.rawBody as RequestInit["body"];
      else if (opts.body !== undefined) {
        body = JSON.stringify(opts.body);
        headers["content-type"] ??= "application/json";
      }
      const res = await app.request(
        path,
        { method, headers, body },
        { incoming: { socket: { remoteAddress: opts.ip ?? "127.0.0.1" } } },
      );
      // An event stream never ends by itself: request() does not read it (use app.request).
      let text: string;
      if (res.headers.get("content-type")?.startsWith("text/event-stream")) {
        await res.body?.cancel();
        text = "";
      } else text = await res.text();
      responses.push(text);
      let parsed: unknown = undefined;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        parsed = undefined;
      }
      if (CONTRACT_CHECK) {
        const violation = contractViolation(app, { method, path, status: res.status, contentType: res.headers.get("content-type"), body: parsed });
        if (violation) throw new ContractViolation(`response contract: ${violation}\n${text.slice(0, 2000)}`);
      }
      return { status: res.status, headers: res.headers, text, body: parsed };
    };

    const login = (username: string, password: string, ip?: string) =>
      request("POST", "/v1/auth/login", { body: { username, password }, ip });

    const harness: ApiHarness = {
      queues,
      prefix,
      app,
      deps,
      config,
      database,
      env: envFor,
      logs,
      responses,
      request,
      login,
      async adminToken() {
        if (cachedAdminToken && (await deps.authenticate(cachedAdminToken))) return cachedAdminToken;
        const res = await login(config.ADMIN_USERNAME, config.ADMIN_PASSWORD, "127.0.0.250");
        if (res.status !== 200) throw new Error(`admin login failed: ${res.status} ${res.text}`);
        cachedAdminToken = res.body.token as string;
        return cachedAdminToken;
      },
      async createUser(opts = {}) {
        const username = opts.username ?? uniqueName();
        const password = opts.password ?? `pw-${randomBytes(8).toString("hex")}`;
        const res = await request("POST", "/v1/admin/users", {
          token: await harness.adminToken(),
          body: { username, password, ...(opts.expires_at !== undefined ? { expires_at: opts.expires_at } : {}) },
        });
        if (res.status !== 201) throw new Error(`create user failed: ${res.status} ${res.text}`);
        const lr = await login(username, password, "127.0.0.251");
        if (lr.status !== 200) throw new Error(`user login failed: ${lr.status} ${lr.text}`);
        return { id: res.body.user.id as string, username, password, token: lr.body.token as string };
      },
      async listen(port = 0) {
        const server = await new Promise<Server>((resolve) => {
          const s = serve({ fetch: app.fetch, port, hostname: "127.0.0.1" }, () => resolve(s as Server)) as Server;
        });
        const stopVnc = await serveVncWebSockets(server, deps, redis);
        const bound = (server.address() as AddressInfo).port;
        let closed = false;
        const close = async () => {
          if (closed) return;
          closed = true;
          await stopVnc();
          await new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
          });
        };
        closers.unshift(close);
        return { url: `http://127.0.0.1:${bound}`, port: bound, server, close };
      },
      withConfig: (o) => build({ ...envFor, ...o }),
      close: async () => {
        for (const c of closers.splice(0)) await c();
      },
    };
    return harness;
  };

  const root = await build(env);
  const rootClose = async () => {
    await deletePrefixedKeys(redis, prefix);
    await queues.close();
    queueConnection.disconnect();
    redis.disconnect();
    await database.close();
    await db.drop();
  };
  closers.push(rootClose);
  return root;
}

/** Values that must never appear in a response or a log line. */
export function findSecrets(haystack: string[], secrets: string[]): string[] {
  const found: string[] = [];
  for (const s of secrets) if (s && haystack.some((h) => h.includes(s))) found.push(s);
  return found;
}
