import { and, asc, eq, inArray, type SQL, sql } from "drizzle-orm";
import { secretAt, type SecretBox } from "../../crypto/secrets.js";
import type { Tx } from "../../db/client.js";
import { hostPool, type HostPoolRow } from "../../db/schema/index.js";
import type { CreateHostInput } from "./schemas.js";

/** What a claimed member hands to the new hosts row (its id, short id, keys and address). */
export interface ClaimedMember {
  id: string;
  engineId: string;
  shortId: string;
  hostKeyPublic: string;
  hostKeyPrivateEnc: string;
  internalKeyPublic: string;
  internalKeyPrivateEnc: string;
  managementAddress: string | null;
  imageId: string | null;
  gatewayImageId: string | null;
}

/**
 * Take one ready warm-pool member of exactly the requested shape (docs/architecture.md#warm-pool),
 * inside the create transaction: `FOR UPDATE SKIP LOCKED`, so concurrent creates each get another
 * member (or none, and go cold) instead of queueing behind one row. The member's private keys are
 * bound to `host_pool` and are re-encrypted for the `hosts` row here, so a ciphertext is only ever
 * readable where it is stored. A member whose keys do not decrypt is set `draining` (the worker
 * removes it) and the create goes cold. Returns null when nothing matches.
 */
export async function claimPoolMember(
  tx: Tx,
  secrets: SecretBox,
  input: Pick<CreateHostInput, "memory_limit_mb" | "cpu_limit" | "pids_limit" | "disk_limit_mb" | "timezone">,
  /** The engines the host may be placed on, best first: a member on an earlier one is preferred. */
  engineIds: string[],
  now: Date,
): Promise<ClaimedMember | null> {
  // No disk size asked: the engine's default, which every member has. A size asked: only a member
  // whose home was made that size.
  const disk: SQL | undefined = input.disk_limit_mb == null ? undefined : eq(hostPool.homeDiskMb, input.disk_limit_mb);
  const [m] = await tx
    .select()
    .from(hostPool)
    .where(
      and(
        inArray(hostPool.engineId, engineIds),
        eq(hostPool.state, "ready"),
        eq(hostPool.memoryLimitMb, input.memory_limit_mb),
        eq(hostPool.cpuLimit, input.cpu_limit),
        eq(hostPool.pidsLimit, input.pids_limit),
        eq(hostPool.timezone, input.timezone),
        disk,
      ),
    )
    .orderBy(sql`array_position(${sql.param(engineIds)}::text[], ${hostPool.engineId})`, asc(hostPool.createdAt))
    .limit(1)
    .for("update", { skipLocked: true });
  if (!m) return null;
  let keys: { hostKeyPrivateEnc: string; internalKeyPrivateEnc: string };
  try {
    keys = rebind(secrets, m);
  } catch {
    await tx.update(hostPool).set({ state: "draining", updatedAt: now }).where(eq(hostPool.id, m.id));
    return null;
  }
  await tx.update(hostPool).set({ state: "claimed", claimedAt: now, updatedAt: now }).where(eq(hostPool.id, m.id));
  return {
    id: m.id,
    engineId: m.engineId,
    shortId: m.shortId,
    hostKeyPublic: m.hostKeyPublic,
    internalKeyPublic: m.internalKeyPublic,
    ...keys,
    managementAddress: m.managementAddress,
    imageId: m.imageId,
    gatewayImageId: m.gatewayImageId,
  };
}

function rebind(secrets: SecretBox, m: HostPoolRow) {
  const hostKey = secrets.decrypt(m.hostKeyPrivateEnc, secretAt.pool(m.id, "host_key_private_enc"));
  const internal = secrets.decrypt(m.internalKeyPrivateEnc, secretAt.pool(m.id, "internal_key_private_enc"));
  return {
    hostKeyPrivateEnc: secrets.encrypt(hostKey, secretAt.host(m.id, "host_key_private_enc")),
    internalKeyPrivateEnc: secrets.encrypt(internal, secretAt.host(m.id, "internal_key_private_enc")),
  };
}
