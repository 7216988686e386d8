/**
 * `node dist/main.js admin <command>`: break-glass administration from a shell on the server
 * (README "Admin CLI"). Every command calls the same services as the API (one source of truth)
 * against the database named by DATABASE_URL; commands that create tasks hand them to the queue
 * in Redis, or leave them pending for the worker's sweeper when Redis does not answer.
 *
 * Exit codes: 0 ok · 1 failure (one line on stderr, no stack trace for expected errors) · 2 usage.
 * Output: aligned tables for people, `--json` for scripts. Nothing secret is printed except the
 * one password a command was asked to generate.
 */
import { readFileSync } from "node:fs";
import { Writable } from "node:stream";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { and, asc, eq, isNull } from "drizzle-orm";
import { Redis } from "ioredis";
import { z } from "zod";
import { apiConfigSchema } from "../shared/config/api.js";
import { commonConfigShape } from "../shared/config/common.js";
import { loadEnvironment } from "../shared/config/env-file.js";
import { ConfigError, parseConfig } from "../shared/config/parse.js";
import { createSecretBox } from "../shared/crypto/secrets.js";
import { createDatabase, type Database } from "../shared/db/client.js";
import { hostStatuses, taskStatuses, users } from "../shared/db/schema/index.js";
import { Conflict, isServiceError, type ServiceError } from "../shared/errors.js";
import { newRequestId } from "../shared/log-context.js";
import { createLogger } from "../shared/logger.js";
import { createEnqueuer } from "../shared/queue/enqueuer.js";
import { QUEUE_NAMES } from "../shared/queue/contracts.js";
import { createQueues, type Queues } from "../shared/queue/queues.js";
import { createHostWaker } from "../shared/queue/wake.js";
import { createRedis, waitForRedis } from "../shared/redis.js";
import type { Actor, ServiceContext } from "../shared/services/context.js";
import { checkConsistency, UnknownEngineError, type ConsistencyReport } from "../worker/consistency.js";
import { addEngine, getEngine, listEngines, removeEngine, setEngineState, updateEngine } from "../shared/services/engines/manage.js";
import { addEngineInput, updateEngineInput } from "../shared/services/engines/schemas.js";
import type { EngineView } from "../shared/services/engines/view.js";
import { listHosts } from "../shared/services/hosts/list.js";
import { rebuildOutdatedHosts } from "../shared/services/hosts/rebuild-outdated.js";
import { createLiveNotifier, noLiveNotifier } from "../shared/services/live/notify.js";
import { publishRevocation } from "../shared/services/revocations.js";
import { cancelTask } from "../shared/services/tasks/cancel.js";
import { listTasks } from "../shared/services/tasks/query.js";
import { createUser } from "../shared/services/users/create.js";
import { resetPassword } from "../shared/services/users/reset-password.js";
import { createUserInput } from "../shared/services/users/schemas.js";

const USAGE = `usage: main.js admin <command> [options]

  reset-password [--username NAME] [--stdin] [--json]
      New password for an account (default: ADMIN_USERNAME, else admin): generated and printed
      once, or read from stdin with --stdin. Every session of the account ends.
  create-user --username NAME [--password-stdin] [--json]
      Create a user; the password is generated and printed once unless read from stdin.
  list-hosts [--status STATUS] [--json]
  list-tasks [--status STATUS] [--limit N] [--json]
  cancel-task TASK_ID [--json]
  rebuild-outdated [--dry-run] [--json]
      Rebuild (home kept) every running or stopped host whose image is outdated.
  engines list [--state STATE] [--json]
  engines show ID [--json]
  engines add ID --endpoint unix:///PATH|tcp://HOST:PORT [--tls-ca FILE --tls-cert FILE --tls-key FILE]
              [--memory-mb N] [--cpus N] [--max-hosts N] [--label KEY=VALUE ...] [--json]
      Add a Docker engine (docs/api.md#engines); a tcp endpoint needs the three TLS files.
  engines update ID [--endpoint URL] [--tls-ca FILE --tls-cert FILE --tls-key FILE]
              [--memory-mb N|none] [--cpus N|none] [--max-hosts N|none] [--label KEY=VALUE ... | --clear-labels] [--json]
      Change only what is given; --label replaces the whole label set; none = not limited.
  engines cordon|uncordon|drain ID [--json]
      cordon/drain: no new hosts are placed on it; uncordon: schedulable again.
  engines remove ID
      Remove an engine with no hosts and no pool members (never the default engine).
  consistency [--engine ID ...] [--json]
      Compare the database with every engine (docs/operations.md#consistency-check): orphans,
      missing, misplaced and duplicate objects (exit 1), drift and unreachable engines (listed).

Exit codes: 0 ok, 1 failure, 2 usage error.
`;

/** A wrong command line: exit 2 with the usage. */
class UsageError extends Error {}

const cliConfigSchema = z.object({
  DATABASE_URL: commonConfigShape.DATABASE_URL,
  REDIS_URL: commonConfigShape.REDIS_URL,
  REDIS_PREFIX: commonConfigShape.REDIS_PREFIX,
  SECRETS_KEY: commonConfigShape.SECRETS_KEY,
  SECRETS_KEY_PREVIOUS: commonConfigShape.SECRETS_KEY_PREVIOUS,
  HOST_MAX_PENDING_TASKS: commonConfigShape.HOST_MAX_PENDING_TASKS,
  ADMIN_USERNAME: apiConfigSchema.shape.ADMIN_USERNAME,
});
type CliConfig = z.output<typeof cliConfigSchema>;

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  readStdin: () => Promise<string>;
}

const defaultIo: Io = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  readStdin: async () => {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  },
};

/** Run one admin command; resolves to the exit code (never throws). */
export async function runAdmin(argv: string[], io: Io = defaultIo): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "help" || command === "--help" || command === "-h") {
    (command ? io.out : io.err)(USAGE);
    return command ? 0 : 2;
  }
  const handler = COMMANDS[command];
  if (!handler) {
    io.err(`admin: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
    return 2;
  }
  let args: ReturnType<typeof parseArgs>;
  try {
    args = parseArgs({ args: rest, options: handler.options, allowPositionals: true, strict: true });
    handler.check?.(args);
  } catch (err) {
    io.err(`admin ${command}: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  let config: CliConfig;
  try {
    config = parseConfig(cliConfigSchema, loadEnvironment());
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.err(`admin: configuration: ${err.message}\n`);
    return 1;
  }
  const session = openSession(config, handler.queues === true);
  try {
    return await handler.run({ args, io, session, config });
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`admin ${command}: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    if (isServiceError(err)) {
      io.err(`admin ${command}: error: ${describe(err)}\n`);
      // A value the service refused as malformed (e.g. a too short password) is a usage error.
      if (err.kind === "invalid") return 2;
    } else {
      // Unexpected (database unreachable, a bug): the message, and the stack only when asked for.
      io.err(`admin ${command}: error: ${(err as Error)?.message ?? String(err)}\n`);
      if (process.env.LOG_LEVEL === "debug" && err instanceof Error && err.stack) io.err(`${err.stack}\n`);
    }
    return 1;
  } finally {
    await session.close();
  }
}

function describe(err: ServiceError): string {
  const details = err.extra.details?.map((d) => `${d.field}: ${d.message}`).join("; ");
  return `${err.message}${details && !err.message.includes(details) ? ` (${details})` : ""} [${err.code}]`;
}

// ---------------------------------------------------------------------------------------------
// Session: database, queues, the acting account

interface Session {
  database: Database;
  /** The ServiceContext of the admin account (the CLI acts with the admin's authority). */
  context(): Promise<ServiceContext>;
  /** Task ids created but not handed to the queue (Redis down): the sweeper queues them. */
  deferred: string[];
  close(): Promise<void>;
}

function openSession(config: CliConfig, needsQueues: boolean): Session {
  const database = createDatabase(config.DATABASE_URL, { max: 2, applicationName: "ccp-admin-cli" });
  const deferred: string[] = [];
  // Enqueue failures are logged by the shared enqueuer; the CLI reports them as one warning.
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split("\n")) {
        if (!line) continue;
        try {
          const rec = JSON.parse(line) as { task_id?: string; msg?: string };
          if (rec.task_id && /enqueue failed/.test(rec.msg ?? "")) deferred.push(rec.task_id);
        } catch {
          /* not a log record */
        }
      }
      cb();
    },
  });
  const logger = createLogger({ level: "warn", name: "admin-cli" }, sink);
  // Only commands that create or cancel tasks talk to Redis; the others never connect.
  const redis = needsQueues ? createRedis(config.REDIS_URL, { name: "ccp-admin-cli" }) : new Redis(config.REDIS_URL, { lazyConnect: true });
  redis.on("error", () => {});
  let bull: Redis | undefined;
  let queues: Queues | undefined;
  let queuesReady = false;
  let ctx: ServiceContext | undefined;

  const context = async (): Promise<ServiceContext> => {
    if (ctx) return ctx;
    if (needsQueues) {
      bull = createRedis(config.REDIS_URL, { name: "ccp-admin-cli-queues", forBullmq: true });
      bull.on("error", () => {});
      queues = createQueues(bull, config.REDIS_PREFIX);
      for (const name of Object.values(QUEUE_NAMES)) queues.get(name).on("error", () => {});
      // A dead Redis must not stall the command per task: wait a moment once, then defer.
      queuesReady = await waitForRedis(bull, 3000).then(
        () => true,
        () => false,
      );
    }
    // Tasks it creates or cancels reach open live-update streams at once (else at their next poll).
    const notifyLive = queuesReady ? createLiveNotifier(redis, config.REDIS_PREFIX) : noLiveNotifier;
    const enqueuer = queues ? createEnqueuer(queues, logger, notifyLive) : undefined;
    const waker = queues ? createHostWaker(database.db, queues, logger) : undefined;
    ctx = {
      db: database.db,
      redis,
      secrets: createSecretBox(config.SECRETS_KEY, config.SECRETS_KEY_PREVIOUS),
      logger,
      clock: () => new Date(),
      maxPendingTasksPerHost: config.HOST_MAX_PENDING_TASKS,
      notifyLive,
      enqueue: async (task) => {
        if (enqueuer && queuesReady) await enqueuer(task);
        else deferred.push(task.id);
      },
      // Without Redis a parked job still looks again after TASK_WAIT_RECHECK_SECONDS.
      wakeHost: async (hostId) => {
        if (waker && queuesReady) await waker(hostId);
      },
      revoke: (r) => (queuesReady ? publishRevocation(redis, config.REDIS_PREFIX, r, logger) : Promise.resolve()),
      actor: await adminActor(database, config.ADMIN_USERNAME),
      ip: "cli",
      // One id per command, as for an HTTP request: the tasks it creates record it, and the
      // worker's lines for them carry it (README "Observability").
      requestId: newRequestId(),
    };
    return ctx;
  };

  return {
    database,
    context,
    deferred,
    async close() {
      // Bounded: closing queues on a Redis that never answered must not hang the command.
      const bounded = (p: Promise<unknown>) =>
        Promise.race([p.catch(() => {}), new Promise((r) => setTimeout(r, 2000).unref())]);
      if (queues) await bounded(queues.close());
      bull?.disconnect();
      redis.disconnect();
      await bounded(database.close());
    },
  };
}

/**
 * The acting account: the live admin (ADMIN_USERNAME, else any active admin). Tasks it requests
 * carry its id as `requested_by` and its events its `actor_id`, as if the admin had used the API.
 */
async function adminActor(database: Database, username: string): Promise<Actor | null> {
  const admins = await database.db
    .select({ id: users.id, username: users.username, status: users.status })
    .from(users)
    .where(and(eq(users.role, "admin"), isNull(users.deletedAt)))
    .orderBy(asc(users.createdAt));
  const admin = admins.find((a) => a.username === username) ?? admins.find((a) => a.status === "active");
  return admin ? { id: admin.id, role: "admin", username: admin.username } : null;
}

function requireActor(ctx: ServiceContext): void {
  if (!ctx.actor) {
    throw Conflict("admin_missing", "no admin account yet: start the api once (it creates the admin from ADMIN_USERNAME and ADMIN_PASSWORD)");
  }
}

// ---------------------------------------------------------------------------------------------
// Output

/** Left-aligned columns, two spaces apart; an empty list prints its `empty` line instead. */
export function table(headers: string[], rows: string[][], empty: string): string {
  if (rows.length === 0) return `${empty}\n`;
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n") + "\n";
}

const json = (io: Io, value: unknown) => io.out(`${JSON.stringify(value, null, 2)}\n`);
const when = (iso: string | null) => (iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "Z") : "-");

function reportDeferred(io: Io, session: Session): void {
  if (session.deferred.length === 0) return;
  io.err(
    `admin: warning: Redis did not answer; ${session.deferred.length} task(s) stay pending until the worker's sweeper queues them\n`,
  );
}

async function readSecretLine(io: Io, what: string): Promise<string> {
  const text = await io.readStdin();
  const line = text.replace(/\r?\n$/, "");
  if (line.includes("\n")) throw new UsageError(`${what} on stdin must be a single line`);
  if (line === "") throw new UsageError(`no ${what} on stdin`);
  return line;
}

// ---------------------------------------------------------------------------------------------
// Commands

interface CommandInput {
  args: ReturnType<typeof parseArgs>;
  io: Io;
  session: Session;
  config: CliConfig;
}

interface Command {
  options: NonNullable<ParseArgsConfig["options"]>;
  /** Extra usage checks on the parsed arguments (throw to exit 2). */
  check?: (args: ReturnType<typeof parseArgs>) => void;
  /** Creates or cancels tasks: connect to Redis. */
  queues?: boolean;
  run(input: CommandInput): Promise<number>;
}

const noPositionals = (args: ReturnType<typeof parseArgs>) => {
  if (args.positionals.length) throw new Error(`unexpected argument ${JSON.stringify(args.positionals[0])}`);
};
const str = (v: unknown) => (typeof v === "string" ? v : undefined);
const oneOf = (name: string, v: string | undefined, allowed: readonly string[]) => {
  if (v !== undefined && !allowed.includes(v)) throw new Error(`--${name} must be one of ${allowed.join(", ")}`);
};

// ---------------------------------------------------------------------------------------------
// engines (docs/api.md#engines): the same verbs as /v1/admin/engines

const ENGINE_SUBCOMMANDS = ["list", "show", "add", "update", "cordon", "uncordon", "drain", "remove"] as const;
const ENGINE_STATE_OF = { cordon: "cordoned", uncordon: "active", drain: "draining" } as const;

/** `--memory-mb 4096` → 4096, `none` → null (not limited), absent → undefined. */
function capacityArg(name: string, v: unknown, allowNone: boolean): number | null | undefined {
  const s = str(v);
  if (s === undefined) return undefined;
  if (allowNone && s === "none") return null;
  if (!/^\d+(\.\d+)?$/.test(s)) throw new UsageError(`--${name} must be a number${allowNone ? " or none" : ""}`);
  return Number(s);
}

function labelArgs(v: unknown): Record<string, string> | undefined {
  if (!Array.isArray(v)) return undefined;
  const labels: Record<string, string> = {};
  for (const kv of v as string[]) {
    const eq = kv.indexOf("=");
    if (eq <= 0) throw new UsageError(`--label takes KEY=VALUE, not ${JSON.stringify(kv)}`);
    labels[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return labels;
}

/** The three TLS files, read here; the key's content is never printed (only the file name is). */
function tlsArgs(values: Record<string, unknown>): { ca_pem: string; cert_pem: string; key_pem: string } | undefined {
  const files = { ca_pem: str(values["tls-ca"]), cert_pem: str(values["tls-cert"]), key_pem: str(values["tls-key"]) };
  const given = Object.values(files).filter((f) => f !== undefined).length;
  if (given === 0) return undefined;
  if (given !== 3) throw new UsageError("--tls-ca, --tls-cert and --tls-key go together");
  const read = (opt: string, file: string) => {
    try {
      return readFileSync(file, "utf8");
    } catch (err) {
      throw new UsageError(`--${opt}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
    }
  };
  return { ca_pem: read("tls-ca", files.ca_pem!), cert_pem: read("tls-cert", files.cert_pem!), key_pem: read("tls-key", files.key_pem!) };
}

/** The API's own input schemas: a bad value is the same 400 the API gives, here a usage error. */
function parseOrUsage<T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } } }, v: unknown): T {
  const parsed = schema.safeParse(v);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(`${issue?.path.map(String).join(".") || "input"}: ${issue?.message ?? "invalid"}`);
  }
  return parsed.data;
}

const limit = (v: number | null, unit = "") => (v === null ? "unlimited" : `${v}${unit}`);

function printEngine(io: Io, e: EngineView): void {
  const lines: [string, string][] = [
    ["id", e.id],
    ["endpoint", e.endpoint],
    ["state", e.state],
    ["health", e.health],
    ["tls", e.tls ? `ca sha256 ${e.tls.ca_sha256}, cert sha256 ${e.tls.cert_sha256}` : "-"],
    ["hosts", `${e.counts.hosts} (${e.counts.running_hosts} running) of ${limit(e.capacity.max_hosts)}`],
    ["memory", `${e.usage.memory_mb} MiB of ${limit(e.capacity.memory_mb, " MiB")}`],
    ["cpus", `${e.usage.cpus} of ${limit(e.capacity.cpus)}`],
    ["pool members", String(e.counts.pool_members)],
    ["labels", Object.entries(e.labels).map(([k, v]) => `${k}=${v}`).join(",") || "-"],
    ["last seen", when(e.last_seen_at)],
    ["last heartbeat", when(e.last_heartbeat_at)],
  ];
  io.out(lines.map(([k, v]) => `${`${k}:`.padEnd(16)}${v}`).join("\n") + "\n");
}

const enginesCommand: Command = {
  options: {
    json: { type: "boolean" },
    state: { type: "string" },
    endpoint: { type: "string" },
    "tls-ca": { type: "string" },
    "tls-cert": { type: "string" },
    "tls-key": { type: "string" },
    "memory-mb": { type: "string" },
    cpus: { type: "string" },
    "max-hosts": { type: "string" },
    label: { type: "string", multiple: true },
    "clear-labels": { type: "boolean" },
  },
  check: (args) => {
    const [sub, id, ...more] = args.positionals;
    if (!sub || !(ENGINE_SUBCOMMANDS as readonly string[]).includes(sub)) {
      throw new Error(`engines takes one of ${ENGINE_SUBCOMMANDS.join(", ")}`);
    }
    if (sub === "list" ? id !== undefined : id === undefined || more.length) {
      throw new Error(sub === "list" ? `unexpected argument ${JSON.stringify(id)}` : `engines ${sub} takes exactly one engine id`);
    }
    const v = args.values;
    const editing = ["endpoint", "tls-ca", "tls-cert", "tls-key", "memory-mb", "cpus", "max-hosts", "label", "clear-labels"].filter((k) => v[k] !== undefined);
    if (sub !== "add" && sub !== "update" && editing.length) throw new Error(`--${editing[0]} is for engines add and update`);
    if (sub !== "list" && v.state !== undefined) throw new Error("--state is for engines list");
    if (sub === "list") oneOf("state", str(v.state), ["active", "cordoned", "draining"]);
    if (sub === "add" && !str(v.endpoint)) throw new Error("--endpoint is required");
    if (sub === "add" && v["clear-labels"]) throw new Error("--clear-labels is for engines update");
    if (v.label !== undefined && v["clear-labels"]) throw new Error("--label and --clear-labels exclude each other");
  },
  async run({ args, io, session }) {
    const [sub, id] = args.positionals as [(typeof ENGINE_SUBCOMMANDS)[number], string | undefined];
    const v = args.values;
    const ctx = await session.context();
    if (sub === "list") {
      const { engines } = await listEngines({ ctx, query: { state: str(v.state) as EngineView["state"] | undefined } });
      if (v.json) json(io, { engines });
      else {
        io.out(
          table(
            ["ID", "STATE", "HEALTH", "ENDPOINT", "HOSTS", "MEMORY MIB", "CPUS", "LABELS", "LAST SEEN"],
            engines.map((e) => [
              e.id,
              e.state,
              e.health,
              e.endpoint,
              `${e.counts.hosts}/${limit(e.capacity.max_hosts)}`,
              `${e.usage.memory_mb}/${limit(e.capacity.memory_mb)}`,
              `${e.usage.cpus}/${limit(e.capacity.cpus)}`,
              Object.entries(e.labels).map(([k, val]) => `${k}=${val}`).join(",") || "-",
              when(e.last_seen_at),
            ]),
            "no engines",
          ),
        );
      }
      return 0;
    }
    if (sub === "remove") {
      requireActor(ctx);
      await removeEngine({ ctx, engineId: id! });
      io.out(`engine ${id} removed\n`);
      return 0;
    }
    let engine: EngineView;
    if (sub === "show") engine = (await getEngine({ ctx, engineId: id! })).engine;
    else if (sub === "add" || sub === "update") {
      requireActor(ctx);
      const body: Record<string, unknown> = {
        endpoint: str(v.endpoint),
        tls: tlsArgs(v),
        memory_mb: capacityArg("memory-mb", v["memory-mb"], sub === "update"),
        cpus: capacityArg("cpus", v.cpus, sub === "update"),
        max_hosts: capacityArg("max-hosts", v["max-hosts"], sub === "update"),
        labels: v["clear-labels"] ? {} : labelArgs(v.label),
      };
      for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
      engine =
        sub === "add"
          ? (await addEngine({ ctx, input: parseOrUsage(addEngineInput, { id, ...body }) })).engine
          : (await updateEngine({ ctx, engineId: id!, input: parseOrUsage(updateEngineInput, body) })).engine;
    } else {
      requireActor(ctx);
      engine = (await setEngineState({ ctx, engineId: id!, state: ENGINE_STATE_OF[sub] })).engine;
    }
    if (v.json) json(io, { engine });
    else {
      if (sub !== "show") io.out(`engine ${engine.id} ${{ add: "added", update: "updated", cordon: "cordoned", uncordon: "uncordoned", drain: "draining" }[sub]}\n`);
      printEngine(io, engine);
    }
    return 0;
  },
};

// ---------------------------------------------------------------------------------------------
// consistency (docs/operations.md#consistency-check): the database against every engine, read-only

function printConsistency(io: Io, r: ConsistencyReport): void {
  io.out(
    table(
      ["ENGINE", "REACHABLE", "HOSTS FOUND/EXPECTED", "POOL FOUND/EXPECTED", "CONTAINERS", "VOLUMES", "ORPHANS", "MISSING", "MISPLACED", "DRIFT"],
      r.engines.map((e) => [
        e.engine_id,
        e.reachable ? "yes" : "NO",
        e.reachable ? `${e.hosts.found}/${e.hosts.expected} (${e.hosts.rows} rows)` : `-/${e.hosts.expected} (${e.hosts.rows} rows)`,
        e.reachable ? `${e.pool_members.found}/${e.pool_members.expected}` : `-/${e.pool_members.expected}`,
        e.reachable ? String(e.containers) : "-",
        e.reachable ? String(e.volumes) : "-",
        String(e.orphans.length),
        String(e.missing.length),
        String(e.misplaced.length),
        String(e.drift.length),
      ]),
      "no engines",
    ),
  );
  const findings: string[][] = [];
  const who = (owner: string, id: string, shortId: string) => `${owner === "pool" ? "pool member" : "host"} ${shortId} (${id})`;
  for (const e of r.engines) {
    for (const o of e.orphans) findings.push(["orphan", e.engine_id, `${o.object} ${o.name}${o.role ? ` (${o.role})` : ""} of unknown id ${o.host_id}`]);
    for (const m of e.missing) findings.push(["missing", e.engine_id, `${who(m.owner, m.id, m.short_id)}, ${m.status}: no ${m.objects.join(", ")}`]);
    for (const m of e.misplaced) findings.push(["misplaced", e.engine_id, `${who(m.owner, m.id, m.short_id)} belongs on ${m.expected_engine}: ${m.objects.join(", ")}`]);
  }
  for (const d of r.duplicates) {
    findings.push(["duplicate", [...new Set(d.containers.map((c) => c.engine_id))].join(","), `${d.containers.length} ${d.role} containers for ${d.id}: ${d.containers.map((c) => `${c.engine_id}/${c.name}`).join(", ")}`]);
  }
  for (const e of r.engines) {
    for (const d of e.drift) findings.push(["drift", e.engine_id, `${who(d.owner, d.id, d.short_id)}, desired ${d.desired}, status ${d.status}: ${d.observed}`]);
  }
  for (const u of r.unreachable_engines) findings.push(["unreachable", u.engine_id, u.error]);
  if (findings.length) io.out(`\n${table(["FINDING", "ENGINE", "DETAIL"], findings, "")}`);
  const t = r.totals;
  const counted = (n: number, what: string) => (n ? [`${n} ${what}`] : []);
  const errors = [...counted(t.orphans, "orphan(s)"), ...counted(t.missing, "missing"), ...counted(t.misplaced, "misplaced"), ...counted(t.duplicates, "duplicate(s)")];
  const notes = [...counted(t.drift, "drift (the reconciler repairs it)"), ...counted(t.unreachable_engines, "engine(s) unreachable, not checked")];
  io.out(`\n${r.ok ? "consistent" : `NOT consistent: ${errors.join(", ")}`}${notes.length ? `; ${notes.join("; ")}` : ""} (${t.hosts} hosts, ${t.pool_members} pool members, ${r.engines.length} engines)\n`);
}

const consistencyCommand: Command = {
  options: { json: { type: "boolean" }, engine: { type: "string", multiple: true } },
  check: (args) => {
    noPositionals(args);
    const ids = (args.values.engine as string[] | undefined) ?? [];
    for (const id of ids) if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(id)) throw new Error(`--engine: not an engine id: ${JSON.stringify(id)}`);
  },
  async run({ args, io, session, config }) {
    const ids = args.values.engine as string[] | undefined;
    let report: ConsistencyReport;
    try {
      report = await checkConsistency({
        db: session.database.db,
        secrets: createSecretBox(config.SECRETS_KEY, config.SECRETS_KEY_PREVIOUS),
        instance: config.REDIS_PREFIX,
        engines: ids?.length ? ids : undefined,
      });
    } catch (err) {
      if (err instanceof UnknownEngineError) throw new UsageError(err.message);
      throw err;
    }
    if (args.values.json) json(io, report);
    else printConsistency(io, report);
    return report.ok ? 0 : 1;
  },
};

const COMMANDS: Record<string, Command> = {
  "reset-password": {
    options: { username: { type: "string" }, stdin: { type: "boolean" }, json: { type: "boolean" } },
    check: noPositionals,
    async run({ args, io, session, config }) {
      const username = str(args.values.username) ?? config.ADMIN_USERNAME;
      const password = args.values.stdin ? await readSecretLine(io, "password") : undefined;
      const ctx = await session.context();
      const result = await resetPassword({ ctx, username, password });
      if (args.values.json) json(io, result);
      else {
        io.out(`password of ${result.user.role} ${result.user.username} reset; every session of it has ended\n`);
        if (result.password) io.out(`new password (shown once): ${result.password}\n`);
      }
      if (result.user.role === "admin" && result.user.username === config.ADMIN_USERNAME) {
        io.err(
          "admin: note: the admin's password comes from ADMIN_PASSWORD; set it to the new password before the api next starts, or the api restores the old one\n",
        );
      }
      return 0;
    },
  },

  "create-user": {
    options: { username: { type: "string" }, "password-stdin": { type: "boolean" }, json: { type: "boolean" } },
    check: (args) => {
      noPositionals(args);
      if (!str(args.values.username)) throw new Error("--username is required");
    },
    async run({ args, io, session }) {
      const password = args.values["password-stdin"] ? await readSecretLine(io, "password") : undefined;
      const ctx = await session.context();
      // The API's own input schema: the same username and password rules.
      const parsed = createUserInput.safeParse({ username: str(args.values.username), password });
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new UsageError(`${issue?.path.join(".") || "input"}: ${issue?.message ?? "invalid"}`);
      }
      const result = await createUser({ ctx, input: parsed.data });
      if (args.values.json) json(io, result);
      else {
        io.out(`user ${result.user.username} created (id ${result.user.id})\n`);
        if (result.password) io.out(`password (shown once): ${result.password}\n`);
      }
      return 0;
    },
  },

  "list-hosts": {
    options: { status: { type: "string" }, json: { type: "boolean" } },
    check: (args) => {
      noPositionals(args);
      oneOf("status", str(args.values.status), hostStatuses);
    },
    async run({ args, io, session }) {
      const ctx = await session.context();
      const status = str(args.values.status) as (typeof hostStatuses)[number] | undefined;
      // Every page: an operator asking for the hosts wants all of them.
      const all: Awaited<ReturnType<typeof listHosts>>["hosts"] = [];
      for (let offset = 0; ; ) {
        const page = await listHosts({ ctx, query: { status, limit: 200, offset } });
        all.push(...page.hosts);
        offset += page.hosts.length;
        if (page.hosts.length === 0 || offset >= page.total) break;
      }
      if (args.values.json) {
        json(io, { hosts: all, total: all.length });
        return 0;
      }
      io.out(
        table(
          ["ID", "SHORT", "OWNER", "STATUS", "DESIRED", "IMAGE", "EGRESS", "CREATED"],
          all.map((h) => [
            h.id,
            h.short_id,
            h.username,
            h.status,
            h.desired_state,
            h.image_outdated ? "outdated" : "current",
            h.egress ? `${h.egress.label} (${h.egress.ip_address})` : "-",
            when(h.created_at),
          ]),
          status ? `no ${status} hosts` : "no hosts",
        ),
      );
      return 0;
    },
  },

  "list-tasks": {
    options: { status: { type: "string" }, limit: { type: "string" }, json: { type: "boolean" } },
    check: (args) => {
      noPositionals(args);
      oneOf("status", str(args.values.status), taskStatuses);
      const limit = str(args.values.limit);
      if (limit !== undefined && !/^[1-9]\d{0,2}$/.test(limit)) throw new Error("--limit must be an integer from 1 to 200");
      if (limit !== undefined && Number(limit) > 200) throw new Error("--limit must be an integer from 1 to 200");
    },
    async run({ args, io, session }) {
      const ctx = await session.context();
      const result = await listTasks({
        ctx,
        query: {
          status: str(args.values.status) as (typeof taskStatuses)[number] | undefined,
          limit: Number(str(args.values.limit) ?? 50),
          offset: 0,
        },
      });
      if (args.values.json) {
        json(io, result);
        return 0;
      }
      io.out(
        table(
          ["ID", "KIND", "STATUS", "HOST", "PROGRESS", "ERROR", "CREATED"],
          result.tasks.map((t) => [
            t.id,
            t.kind,
            t.status + (t.cancel_requested && t.status === "running" ? " (cancel requested)" : ""),
            t.host_id ?? "-",
            `${t.progress_percent}%`,
            t.error_code ?? "-",
            when(t.created_at),
          ]),
          "no tasks",
        ),
      );
      if (result.total > result.tasks.length) io.out(`(${result.tasks.length} of ${result.total}, newest first; --limit for more)\n`);
      return 0;
    },
  },

  "cancel-task": {
    options: { json: { type: "boolean" } },
    queues: true,
    check: (args) => {
      if (args.positionals.length !== 1) throw new Error("cancel-task takes exactly one task id");
    },
    async run({ args, io, session }) {
      const ctx = await session.context();
      const { status, task } = await cancelTask({ ctx, taskId: args.positionals[0]! });
      if (args.values.json) json(io, { status: status === 200 ? "canceled" : "cancel_requested", task });
      else if (status === 200) io.out(`task ${task.id} (${task.kind}) canceled\n`);
      else io.out(`task ${task.id} (${task.kind}) is running: cancel requested, the worker stops it at its next step\n`);
      return 0;
    },
  },

  "rebuild-outdated": {
    options: { "dry-run": { type: "boolean" }, json: { type: "boolean" } },
    queues: true,
    check: noPositionals,
    async run({ args, io, session }) {
      const ctx = await session.context();
      requireActor(ctx);
      const dryRun = args.values["dry-run"] === true;
      const result = await rebuildOutdatedHosts({ ctx, dryRun });
      if (args.values.json) json(io, { ...result, deferred_task_ids: session.deferred });
      else {
        io.out(
          table(
            dryRun ? ["HOST", "SHORT", "OWNER", "STATUS"] : ["HOST", "SHORT", "OWNER", "STATUS", "REBUILD TASK", "STOP TASK"],
            result.requested.map((r) =>
              dryRun ? [r.host_id, r.short_id, r.username, r.status] : [r.host_id, r.short_id, r.username, r.status, r.task_id ?? "-", r.stop_task_id ?? "-"],
            ),
            "no outdated hosts",
          ),
        );
        for (const s of result.skipped) io.out(`skipped ${s.short_id} (${s.host_id}): ${s.message} [${s.code}]\n`);
        if (dryRun && result.requested.length) io.out(`dry run: ${result.requested.length} host(s) would be rebuilt\n`);
        else if (!dryRun) io.out(`${result.requested.length} rebuild(s) requested, ${result.skipped.length} skipped\n`);
      }
      reportDeferred(io, session);
      // Some hosts could not be covered: the operator must look (exit 1), the rest went ahead.
      return result.skipped.length ? 1 : 0;
    },
  },

  engines: enginesCommand,
  consistency: consistencyCommand,
};
