import { randomUUID } from "node:crypto";
import { and, eq, inArray } from "drizzle-orm";
import { generateShortId } from "../../shared/crypto/random.js";
import { secretAt } from "../../shared/crypto/secrets.js";
import { hostPool, hosts, type HostPoolRow, type HostRow } from "../../shared/db/schema/index.js";
import { isUniqueViolation } from "../../shared/db/pg-errors.js";
import { HOST_SHAPE_DEFAULTS } from "../../shared/services/hosts/schemas.js";
import { generateEd25519KeyPair } from "../../shared/ssh/keygen.js";
import type { WorkerDeps } from "../deps.js";
import { gatewayName, hostContainerName } from "../hosts/names.js";
import { prepareVolume, removeHome, startGateway, startHostContainer, waitSsh } from "../hosts/steps.js";
import { containerImageIds } from "../images.js";
import { runIsolationCheck } from "../network/verify.js";

/**
 * Warm-pool members (docs/architecture.md#warm-pool): create one, remove one. A member is built
 * by the same steps as a host (prepareVolume, startGateway, startHostContainer, waitSsh) under the
 * id the host will have, so claiming it moves nothing.
 */

/** The engine's current image ids (null while an image is missing: nothing is warmed then). */
export async function currentImageIds(deps: WorkerDeps): Promise<{ imageId: string; gatewayImageId: string } | null> {
  const [imageId, gatewayImageId] = [await deps.runtime.imageId(deps.config.HOST_IMAGE), await deps.runtime.imageId(deps.config.GATEWAY_IMAGE)];
  return imageId && gatewayImageId ? { imageId, gatewayImageId } : null;
}

/**
 * The member seen as a host row, for the host steps. Its private keys are bound to `host_pool`;
 * the steps decrypt as `hosts`, so they are re-bound in memory only (never stored like this).
 */
export function asHostRow(deps: WorkerDeps, m: HostPoolRow): HostRow {
  const rebind = (col: "host_key_private_enc" | "internal_key_private_enc", v: string) =>
    deps.secrets.encrypt(deps.secrets.decrypt(v, secretAt.pool(m.id, col)), secretAt.host(m.id, col));
  const now = new Date();
  return {
    id: m.id,
    userId: m.id,
    shortId: m.shortId,
    status: "creating",
    desiredState: "running",
    engineId: m.engineId,
    image: deps.config.HOST_IMAGE,
    imageId: m.imageId,
    gatewayImageId: m.gatewayImageId,
    memoryLimitMb: m.memoryLimitMb,
    cpuLimit: m.cpuLimit,
    pidsLimit: m.pidsLimit,
    diskLimitMb: m.diskLimitMb,
    timezone: m.timezone,
    sshPasswordEnc: "",
    hostKeyPublic: m.hostKeyPublic,
    hostKeyPrivateEnc: rebind("host_key_private_enc", m.hostKeyPrivateEnc),
    internalKeyPublic: m.internalKeyPublic,
    internalKeyPrivateEnc: rebind("internal_key_private_enc", m.internalKeyPrivateEnc),
    managementAddress: m.managementAddress,
    repairAttempts: 0,
    repairNotBefore: null,
    idleStopMinutes: null,
    idleCpuPercent: null,
    alwaysOn: false,
    lastActiveAt: null,
    idleStoppedAt: null,
    sessionRecording: null,
    createdAt: now,
    updatedAt: now,
  };
}

/** Insert a `warming` row for a new member of the default shape, with its keys (unique short id). */
async function insertMember(deps: WorkerDeps): Promise<HostPoolRow> {
  for (let attempt = 0; ; attempt++) {
    const id = randomUUID();
    const shortId = generateShortId();
    const hostKey = generateEd25519KeyPair(`host-${shortId}`);
    const internal = generateEd25519KeyPair(`cloud-cli-proxy-${shortId}`);
    try {
      // The short id becomes the host's: one already taken by a host would fail the claim.
      const [taken] = await deps.db.select({ id: hosts.id }).from(hosts).where(eq(hosts.shortId, shortId));
      if (taken) continue;
      const [row] = await deps.db
        .insert(hostPool)
        .values({
          id,
          engineId: deps.config.ENGINE_ID,
          state: "warming",
          shortId,
          memoryLimitMb: HOST_SHAPE_DEFAULTS.memoryLimitMb,
          cpuLimit: HOST_SHAPE_DEFAULTS.cpuLimit,
          pidsLimit: HOST_SHAPE_DEFAULTS.pidsLimit,
          diskLimitMb: null,
          timezone: HOST_SHAPE_DEFAULTS.timezone,
          homeDiskMb: deps.config.HOST_DISK_LIMIT_MB,
          hostKeyPublic: hostKey.publicKey,
          hostKeyPrivateEnc: deps.secrets.encrypt(hostKey.privateKey, secretAt.pool(id, "host_key_private_enc")),
          internalKeyPublic: internal.publicKey,
          internalKeyPrivateEnc: deps.secrets.encrypt(internal.privateKey, secretAt.pool(id, "internal_key_private_enc")),
        })
        .returning();
      return row!;
    } catch (err) {
      if (isUniqueViolation(err, "host_pool_short_id_uq") && attempt < 5) continue;
      throw err;
    }
  }
}

/**
 * Create one member and bring it to `ready`: home on its own disk, gateway in blocked mode (no
 * egress until a claim applies one), host container, blocked mode's isolation check when the
 * egress checks are configured, sshd presenting the pinned key. A failure removes what was made
 * and rethrows (the keeper backs off). Returns the member's id.
 */
export async function warmMember(deps: WorkerDeps): Promise<string> {
  const member = await insertMember(deps);
  try {
    const host = asHostRow(deps, member);
    await prepareVolume(deps, host);
    // `apply`: an unbound member is blocked whatever EGRESS_UNBOUND_POLICY says (docs/egress.md#modes).
    const gw = await startGateway(deps, host, { at: "apply" });
    if (gw.plan.config.mode !== "blocked") throw new Error(`a pool gateway must start blocked, planned ${gw.plan.config.mode}`);
    await startHostContainer(deps, host, gw.state);
    let isolationVerifiedAt: Date | null = null;
    if (deps.config.EGRESS_CHECKS) {
      // Proven once here, on the gateway the host will keep: a claim that leaves it blocked does not
      // need to prove it again (docs/architecture.md#warm-pool).
      const r = await runIsolationCheck(deps, randomUUID(), gatewayName(member.id));
      if (!r.passed) throw new Error(`a pool gateway in blocked mode reached the network: ${JSON.stringify(r.checks)}`);
      isolationVerifiedAt = new Date();
    }
    await waitSsh(deps, host, gw.mgmtAddress);
    const ids = await containerImageIds(deps, { host: hostContainerName(member.id), gateway: gatewayName(member.id) });
    const [ready] = await deps.db
      .update(hostPool)
      .set({
        state: "ready",
        managementAddress: gw.mgmtAddress,
        imageId: ids.imageId ?? null,
        gatewayImageId: ids.gatewayImageId ?? null,
        isolationVerifiedAt,
        updatedAt: new Date(),
      })
      // Drained meanwhile (an image change): it is removed, not offered.
      .where(and(eq(hostPool.id, member.id), eq(hostPool.state, "warming")))
      .returning({ id: hostPool.id });
    if (!ready) await removeMember(deps, member.id);
    return member.id;
  } catch (err) {
    await removeMember(deps, member.id).catch((e: unknown) => deps.logger.warn({ err: e, member: member.id }, "could not remove a failed pool member"));
    throw err;
  }
}

/**
 * Remove a member's containers, home (volume and filesystem) and row. Idempotent. A member that a
 * create claimed meanwhile is left alone (false): its host owns the objects now. `claimed: true`
 * (the reconciler, for a claimed member whose host row is gone) removes a claimed one too.
 */
export async function removeMember(deps: WorkerDeps, id: string, opts: { claimed?: boolean } = {}): Promise<boolean> {
  const from = opts.claimed ? (["warming", "ready", "draining", "claimed"] as const) : (["warming", "ready", "draining"] as const);
  // `draining` first: no claim can take the row from here on (a claim takes only `ready`).
  const [row] = await deps.db
    .update(hostPool)
    .set({ state: "draining", updatedAt: new Date() })
    .where(and(eq(hostPool.id, id), inArray(hostPool.state, [...from])))
    .returning({ id: hostPool.id });
  if (!row) return false;
  if (opts.claimed) {
    const [host] = await deps.db.select({ id: hosts.id }).from(hosts).where(eq(hosts.id, id));
    if (host) {
      await deps.db.delete(hostPool).where(eq(hostPool.id, id));
      return false;
    }
  }
  await deps.runtime.removeContainer(hostContainerName(id));
  await deps.runtime.removeContainer(gatewayName(id));
  await removeHome(deps, id, null);
  await deps.db.delete(hostPool).where(eq(hostPool.id, id));
  return true;
}
