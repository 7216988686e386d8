import { and, desc, eq, inArray, isNull } from "drizzle-orm";
import { verifyDummy } from "../../crypto/passwords.js";
import { hosts, tasks, users, type HostRow, type TaskRow, type UserRow } from "../../db/schema/index.js";
import { Forbidden, InvalidCredentials, NotFound, RateLimited, Unavailable } from "../../errors.js";
import { isInfrastructureError } from "../../infra-errors.js";
import { checkPassword } from "../auth/password-gate.js";
import type { AuthDeps, ServiceContext } from "../context.js";
import { recordEvent } from "../events.js";
import { insertTask } from "../tasks/create.js";
import { statusUrl, wakePayload } from "./bootstrap.js";
import type { EntryAuthInput } from "./schemas.js";
import { SHORT_ID_PATTERN } from "./schemas.js";
import { proxyHostKey, type SshEndpoint } from "./ssh-target.js";
import { mintSshTicket } from "./tickets.js";

const ENDPOINT = "/v1/entry/{shortId}/auth";

/** A live host (not being deleted) with a live owner, by short id; undefined for anything else. */
async function findEntryTarget(ctx: ServiceContext, shortId: string): Promise<{ host: HostRow; owner: UserRow } | undefined> {
  // The pattern is checked before anything else: nothing else reaches the database.
  if (!SHORT_ID_PATTERN.test(shortId)) return undefined;
  const [row] = await ctx.db
    .select({ host: hosts, owner: users })
    .from(hosts)
    .innerJoin(users, and(eq(users.id, hosts.userId), isNull(users.deletedAt)))
    .where(eq(hosts.shortId, shortId));
  if (!row || row.host.status === "deleting") return undefined;
  return row;
}

/**
 * `GET /entry/{shortId}` (docs/api.md#entry): the id the script is generated for. A malformed,
 * unknown or deleting id is a plain 404 and counts toward the IP failure counter, so the short-id
 * space cannot be walked for free. It is not a password endpoint, so it is never answered 429.
 */
export async function entryScriptTarget({ ctx, shortId }: { ctx: ServiceContext & Pick<AuthDeps, "limiter">; shortId: string }) {
  const target = await findEntryTarget(ctx, shortId);
  if (!target) {
    await ctx.limiter.recordFailure([{ type: "ip", value: ctx.ip }]);
    throw NotFound("not_found", "not found");
  }
  return { shortId: target.host.shortId };
}

/**
 * A failed attempt that names no account (malformed, unknown or deleting id): only the IP counter
 * applies. Same order as the password gate — refuse while blocked, count, then spend the time a
 * real verification takes so the answer does not reveal whether the id exists.
 */
async function countFailureWithoutAccount(ctx: ServiceContext & AuthDeps, password: string): Promise<void> {
  const key = { type: "ip" as const, value: ctx.ip };
  const blocked = await ctx.limiter.acquire([key]);
  if (blocked) {
    if (blocked.firstRejection) {
      await recordEvent(ctx.db, {
        type: "auth.rate_limited",
        level: "warn",
        message: "too many failed password attempts (ip)",
        metadata: { key_type: "ip", ip: ctx.ip, endpoint: ENDPOINT },
      });
    }
    throw RateLimited(blocked.retryAfterSeconds);
  }
  await verifyDummy(password);
}

type EntryResult =
  | { status: "ready"; ssh_user: string; ssh_ticket: string; ssh_host: string; ssh_port: number; host_key: string; known_hosts_line: string }
  | { status: "starting"; task_id: string; status_url: string };

/** `POST /v1/entry/{shortId}/auth` (docs/api.md#entry). */
export async function entryAuth({
  ctx,
  shortId,
  input,
  ssh,
}: {
  ctx: ServiceContext & AuthDeps;
  shortId: string;
  input: EntryAuthInput;
  ssh: SshEndpoint & { ticketTtlSeconds: number };
}): Promise<EntryResult> {
  const failed = (reason: string, target?: { host: HostRow; owner: UserRow }, proven = false) =>
    recordEvent(ctx.db, {
      type: "entry.auth.failed",
      level: "warn",
      message: "entry authentication refused",
      actorId: proven ? target?.owner.id : null,
      userId: target?.owner.id ?? null,
      hostId: target?.host.id ?? null,
      metadata: { short_id: shortId, ip: ctx.ip, reason },
    });

  const target = await findEntryTarget(ctx, shortId);
  if (!target) {
    await countFailureWithoutAccount(ctx, input.password);
    await failed("invalid_credentials");
    throw InvalidCredentials();
  }
  const { host, owner } = target;
  const outcome = await checkPassword(ctx, { username: owner.username, password: input.password, endpoint: ENDPOINT, user: owner });
  if (!outcome.ok) {
    if (outcome.reason === "invalid_credentials") {
      await failed("invalid_credentials", target);
      throw InvalidCredentials();
    }
    await failed(outcome.reason, target, true);
    throw Forbidden(outcome.reason, outcome.reason === "account_disabled" ? "account is disabled" : "account has expired");
  }

  let started: { task: TaskRow; created: boolean } | null;
  try {
    started = await ctx.db.transaction(async (tx) => {
      // The row lock serialises concurrent entry auths of one host: they share one task.
      const [locked] = await tx.select().from(hosts).where(eq(hosts.id, host.id)).for("update");
      if (!locked || locked.status === "deleting") throw InvalidCredentials();
      if (locked.status === "running") return null;
      await tx
        .update(hosts)
        .set({ desiredState: "running", updatedAt: ctx.clock(), repairAttempts: 0, repairNotBefore: null })
        .where(eq(hosts.id, host.id));
      const [inFlight] = await tx
        .select()
        .from(tasks)
        .where(
          and(
            eq(tasks.hostId, host.id),
            eq(tasks.kind, "host.ensure-running"),
            inArray(tasks.origin, ["entry", "bootstrap"]),
            inArray(tasks.status, ["pending", "running"]),
            eq(tasks.cancelRequested, false),
          ),
        )
        .orderBy(desc(tasks.createdAt))
        .limit(1);
      const task =
        inFlight ??
        (await insertTask(tx, {
          kind: "host.ensure-running",
          hostId: host.id,
          requestedBy: owner.id,
          origin: "entry",
          // A host stopped for idleness is woken: the worker records `host.woken` (docs/idle.md#wake).
          payload: wakePayload(locked),
          requestId: ctx.requestId,
        }));
      await recordEvent(tx, {
        type: "entry.auth.succeeded",
        message: `entry authentication for host ${host.shortId}`,
        actorId: owner.id,
        userId: owner.id,
        hostId: host.id,
        taskId: task.id,
        metadata: { short_id: host.shortId, ip: ctx.ip, outcome: "starting" },
      });
      return { task, created: !inFlight };
    });
  } catch (err) {
    if (isInfrastructureError(err)) {
      ctx.logger.warn({ err: String(err) }, "entry start task could not be created");
      throw Unavailable("start_failed", "your host could not be started; try again later");
    }
    throw err;
  }
  if (started) {
    if (started.created) await ctx.enqueue(started.task);
    return { status: "starting", task_id: started.task.id, status_url: statusUrl(started.task.id) };
  }

  const key = await proxyHostKey(ctx.db, ctx.secrets, ssh);
  // A one-time ticket, as the bootstrap handoff gives (issue 10 §5): the script never holds the
  // host's long-lived SSH password, so nothing it leaves behind (environment, askpass file, a
  // core dump, the terminal of a shared machine) lets anyone log in later.
  const ticket = await ctx.db.transaction(async (tx) => {
    // Minted only for a host that is still running and not being deleted.
    const [current] = await tx.select({ status: hosts.status }).from(hosts).where(eq(hosts.id, host.id)).for("share");
    if (!current || current.status !== "running") return null;
    const minted = await mintSshTicket(tx, { hostId: host.id, userId: owner.id, taskId: null, now: ctx.clock(), ttlSeconds: ssh.ticketTtlSeconds });
    await recordEvent(tx, {
      type: "entry.auth.succeeded",
      message: `entry authentication for host ${host.shortId}`,
      actorId: owner.id,
      userId: owner.id,
      hostId: host.id,
      metadata: { short_id: host.shortId, ip: ctx.ip, outcome: "ready", expires_at: minted.expiresAt.toISOString() },
    });
    return minted.ticket;
  });
  // The host left `running` between the two reads (stopped, deleting): the script signs in again.
  if (!ticket) throw Unavailable("ssh_not_ready", "your host is not running any more; try again");
  return {
    status: "ready",
    ssh_user: host.shortId,
    ssh_ticket: ticket,
    ssh_host: ssh.sshPublicHost,
    ssh_port: ssh.sshPublicPort,
    host_key: key.host_key,
    known_hosts_line: key.known_hosts_line,
  };
}
