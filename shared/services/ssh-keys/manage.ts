import { and, count, desc, eq } from "drizzle-orm";
import type { Tx } from "../../db/client.js";
import { hosts, sshKeys, type TaskRow, type UserRow } from "../../db/schema/index.js";
import { requestHostTask } from "../tasks/request.js";
import { isUniqueViolation } from "../../db/pg-errors.js";
import { Conflict, Invalid, NotFound } from "../../errors.js";
import { generateEd25519KeyPair } from "../../ssh/keygen.js";
import { PublicKeyError, parsePublicKey } from "../../ssh/public-key.js";
import type { Pagination } from "../../validation.js";
import { isUuid } from "../../validation.js";
import type { ServiceContext } from "../context.js";
import { recordEvent } from "../events.js";
import { getLiveUser } from "../users/lookup.js";
import { renderKey } from "./render.js";
import { type AddKeyInput, type GenerateKeyInput, MAX_KEYS_PER_USER } from "./schemas.js";

/**
 * SSH login keys (docs/api.md#ssh-keys). Every verb acts on one owner: the admin variants pass the
 * path's user id, the self-service variants the caller's own id, so a user can only ever reach
 * their own keys.
 */
/**
 * When the owner's host is running, a `host.sync-keys` task installs the change in its
 * authorized_keys (docs/api.md#ssh-keys). Called inside the key change's transaction.
 */
async function syncTaskIfRunning(ctx: ServiceContext, tx: Tx, ownerId: string): Promise<TaskRow | null> {
  // Locked: requestHostTask's "already waiting" and cap checks hold under concurrent requests.
  const [host] = await tx
    .select({ id: hosts.id })
    .from(hosts)
    .where(and(eq(hosts.userId, ownerId), eq(hosts.status, "running")))
    .for("update");
  if (!host) return null;
  // A sync already waiting covers this change too (it reads the keys when it runs); enqueueing
  // its job again is a no-op (job id = task id).
  const { task } = await requestHostTask(
    tx,
    { kind: "host.sync-keys", hostId: host.id, requestedBy: ctx.actor?.id ?? "system:keys", requestId: ctx.requestId },
    ctx.maxPendingTasksPerHost,
  );
  return task;
}

export async function listKeys({ ctx, ownerId, page }: { ctx: ServiceContext; ownerId: string; page: Pagination }) {
  const owner = await getLiveUser(ctx.db, ownerId);
  const rows = await ctx.db
    .select()
    .from(sshKeys)
    .where(eq(sshKeys.userId, owner.id))
    .orderBy(desc(sshKeys.createdAt), desc(sshKeys.id))
    .limit(page.limit)
    .offset(page.offset);
  const [counted] = await ctx.db.select({ total: count() }).from(sshKeys).where(eq(sshKeys.userId, owner.id));
  return { keys: rows.map(renderKey), total: counted?.total ?? 0, limit: page.limit, offset: page.offset };
}

async function insertKey(
  ctx: ServiceContext,
  ownerId: string,
  key: { label: string; keyType: "ed25519" | "ecdsa" | "rsa"; fingerprint: string; publicKey: string },
  eventType: "ssh_key.added" | "ssh_key.generated",
) {
  try {
    return await ctx.db.transaction(async (tx) => {
      // Lock the owner so the 50-key limit holds under concurrent adds.
      const owner = await getLiveUser(tx, ownerId, { forUpdate: true });
      await assertBelowLimit(tx, owner);
      const [row] = await tx
        .insert(sshKeys)
        .values({ userId: owner.id, ...key })
        .returning();
      const task = await syncTaskIfRunning(ctx, tx, owner.id);
      await recordEvent(tx, {
        type: eventType,
        message: `SSH key ${row!.fingerprint} ${eventType === "ssh_key.added" ? "added" : "generated"} for ${owner.username}`,
        actorId: ctx.actor?.id,
        userId: owner.id,
        metadata: { key_id: row!.id, fingerprint: row!.fingerprint, key_type: row!.keyType, label: row!.label },
      });
      return { row: row!, task };
    });
  } catch (err) {
    if (isUniqueViolation(err, "ssh_keys_user_fingerprint_uq")) {
      throw Conflict("key_exists", "this public key is already registered for this user");
    }
    throw err;
  }
}

async function assertBelowLimit(tx: Tx, owner: UserRow): Promise<void> {
  const [counted] = await tx.select({ n: count() }).from(sshKeys).where(eq(sshKeys.userId, owner.id));
  if ((counted?.n ?? 0) >= MAX_KEYS_PER_USER) {
    throw Conflict("key_limit_reached", `a user can have at most ${MAX_KEYS_PER_USER} SSH keys`);
  }
}

/**
 * The default label: the key's comment truncated to 100 characters (docs/api.md#ssh-keys), counted
 * in code points like an explicit label. A plain `slice(0, 100)` could split a surrogate pair:
 * the lone half was stored as U+FFFD, and in event metadata Postgres rejected the JSON (a 500).
 */
function defaultLabel(comment: string | null): string {
  return [...(comment ?? "")].slice(0, 100).join("");
}

export async function addKey({ ctx, ownerId, input }: { ctx: ServiceContext; ownerId: string; input: AddKeyInput }) {
  let parsed;
  try {
    parsed = parsePublicKey(input.public_key);
  } catch (err) {
    if (err instanceof PublicKeyError) throw Invalid([{ field: "public_key", message: err.message }]);
    throw err;
  }
  const { row, task } = await insertKey(
    ctx,
    ownerId,
    {
      label: input.label ?? defaultLabel(parsed.comment),
      keyType: parsed.keyType,
      fingerprint: parsed.fingerprint,
      publicKey: parsed.normalized,
    },
    "ssh_key.added",
  );
  if (task) await ctx.enqueue(task);
  return { key: renderKey(row), ...(task ? { task_id: task.id } : {}) };
}

export async function generateKey({
  ctx,
  ownerId,
  input,
}: {
  ctx: ServiceContext;
  ownerId: string;
  input: GenerateKeyInput;
}) {
  const owner = await getLiveUser(ctx.db, ownerId);
  const pair = generateEd25519KeyPair(`${owner.username}@cloud-cli-proxy`);
  const parsed = parsePublicKey(pair.publicKey);
  const { row, task } = await insertKey(
    ctx,
    owner.id,
    { label: input.label ?? "generated", keyType: "ed25519", fingerprint: parsed.fingerprint, publicKey: parsed.normalized },
    "ssh_key.generated",
  );
  if (task) await ctx.enqueue(task);
  // The private half is returned once and never stored or logged.
  return { key: renderKey(row), private_key: pair.privateKey, ...(task ? { task_id: task.id } : {}) };
}

export async function deleteKey({ ctx, ownerId, keyId }: { ctx: ServiceContext; ownerId: string; keyId: string }) {
  const task = await ctx.db.transaction(async (tx) => {
    const owner = await getLiveUser(tx, ownerId);
    if (!isUuid(keyId)) throw NotFound("key_not_found", "SSH key not found");
    // Scoped to the owner: another user's key id is "not found", never "forbidden".
    const [row] = await tx
      .delete(sshKeys)
      .where(and(eq(sshKeys.id, keyId.toLowerCase()), eq(sshKeys.userId, owner.id)))
      .returning();
    if (!row) throw NotFound("key_not_found", "SSH key not found");
    await recordEvent(tx, {
      type: "ssh_key.deleted",
      message: `SSH key ${row.fingerprint} deleted for ${owner.username}`,
      actorId: ctx.actor?.id,
      userId: owner.id,
      metadata: { key_id: row.id, fingerprint: row.fingerprint, key_type: row.keyType, label: row.label },
    });
    return syncTaskIfRunning(ctx, tx, owner.id);
  });
  if (task) await ctx.enqueue(task);
}
