import { randomUUID } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import { and, count, eq, isNotNull, isNull, type SQL } from "drizzle-orm";
import { type SecretBox, secretAt, SecretUnreadableError } from "../../crypto/secrets.js";
import type { DbOrTx, Tx } from "../../db/client.js";
import {
  egressIps,
  type EgressIpRow,
  hostEgressBindings,
  type HostRow,
  hosts,
  type TaskRow,
  tasks,
} from "../../db/schema/index.js";
import { isForeignKeyViolation, isUniqueViolation } from "../../db/pg-errors.js";
import { Conflict, type FieldIssue, Invalid, NotFound } from "../../errors.js";
import { isUuid } from "../../validation.js";
import type { ServiceContext } from "../context.js";
import { recordEvent } from "../events.js";
import { insertTask } from "../tasks/create.js";
import {
  getAt,
  joinProxySecrets,
  loadEgressRows,
  MASK,
  type ProxySecret,
  renderEgress,
  setAt,
  splitProxySecrets,
} from "./render.js";
import {
  type ConfigIssue,
  type CreateEgressInput,
  checkProxyConfig,
  foreignFieldIssues,
  type ListEgressQuery,
  type UpdateEgressInput,
} from "./schemas.js";
import { generateWgKeyPair, wgPublicKeyFromPrivate } from "./wg-keys.js";

/**
 * Egress IP management (docs/api.md#egress-ips). Secrets (WireGuard private and preshared keys,
 * proxy passwords, vmess UUIDs and any proxy key named like a secret) are encrypted at rest and
 * never leave this module except through loadEgressSecrets, which only the worker's data plane
 * calls. Responses mask them (render.ts); events name changed fields, never values.
 */

/** Host statuses in which a gateway exists and an egress change is applied live (docs/api.md#egress-ips, docs/api.md#bindings). */
export const LIVE_HOST_STATUSES: ReadonlySet<HostRow["status"]> = new Set(["running", "starting", "creating", "rebuilding"]);

const EGRESS_NOT_FOUND = () => NotFound("egress_ip_not_found", "egress IP not found");
const IP_TAKEN = () => Conflict("ip_address_taken", "another egress IP declares this ip_address");
const IP_UNIQUE = "egress_ips_ip_address_uq";

const issuesToDetails = (issues: ConfigIssue[], prefix?: string): FieldIssue[] =>
  issues.map((i) => ({ field: [prefix, ...i.path].filter((p) => p !== undefined && p !== "").join(".") || "body", message: i.message }));

/**
 * A `host.apply-egress` task for a host whose gateway is up (or coming up), in the caller's
 * transaction; null when the next start applies the binding anyway. The worker reads the host's
 * current binding when it runs, so the task only names the host (and, informatively, the egress).
 */
export async function applyEgressTaskFor(
  tx: Tx,
  host: Pick<HostRow, "id" | "status">,
  opts: { requestedBy: string; egressIpId: string | null; requestId?: string },
): Promise<TaskRow | null> {
  if (!LIVE_HOST_STATUSES.has(host.status)) return null;
  return insertTask(tx, {
    kind: "host.apply-egress",
    hostId: host.id,
    egressIpId: opts.egressIpId,
    requestedBy: opts.requestedBy,
    requestId: opts.requestId,
  });
}

async function lockEgress(tx: Tx, id: string): Promise<EgressIpRow> {
  if (!isUuid(id)) throw EGRESS_NOT_FOUND();
  const [row] = await tx.select().from(egressIps).where(eq(egressIps.id, id.toLowerCase())).for("update");
  if (!row) throw EGRESS_NOT_FOUND();
  return row;
}

function decryptProxySecrets(secrets: SecretBox, row: Pick<EgressIpRow, "id" | "proxySecretsEnc">): ProxySecret[] {
  return row.proxySecretsEnc
    ? (JSON.parse(secrets.decrypt(row.proxySecretsEnc, secretAt.egress(row.id, "proxy_secrets_enc"))) as ProxySecret[])
    : [];
}

/** The encrypted columns of a plaintext proxy_config, bound to the egress row `id`. */
function storeProxyConfig(secrets: SecretBox, id: string, config: Record<string, unknown>) {
  const split = splitProxySecrets(config);
  return {
    proxyConfig: split.stored,
    proxySecretsEnc: split.secrets.length ? secrets.encrypt(JSON.stringify(split.secrets), secretAt.egress(id, "proxy_secrets_enc")) : null,
  };
}

/**
 * Does the stored secret equal `value`? A stored value that does not decrypt in its place
 * (SecretUnreadableError: moved from another row, tampered) counts as different, so sending the
 * secret again replaces it — the way out of that state.
 */
function storedEquals(secrets: SecretBox, enc: string | null, at: Parameters<SecretBox["decrypt"]>[1], value: string): boolean {
  if (!enc) return false;
  try {
    return secrets.decrypt(enc, at) === value;
  } catch (err) {
    if (err instanceof SecretUnreadableError) return false;
    throw err;
  }
}

/** Our public key must not be the peer's: a tunnel to ourselves would never pass traffic. */
function samePeerKeyIssue(peerPublicKey: string | null | undefined, ourPublicKey: string): FieldIssue[] {
  return peerPublicKey === ourPublicKey
    ? [{ field: "wg_public_key", message: "must differ from our own public key (wg_client_public_key)" }]
    : [];
}

// ---------------------------------------------------------------------------------------------
// Create

/** `POST /v1/admin/egress-ips` → 201 `{egress_ip}`. */
export async function createEgress({ ctx, input }: { ctx: ServiceContext; input: CreateEgressInput }) {
  // The id is chosen here: the secrets' ciphertexts are bound to their row (issue 10 §5).
  const id = randomUUID();
  const values: typeof egressIps.$inferInsert = {
    id,
    label: input.label,
    ipAddress: input.ip_address,
    tunnelType: input.tunnel_type,
    provider: input.provider,
    status: input.status,
    health: "unknown",
  };
  let keyGenerated = false;
  if (input.tunnel_type === "wireguard") {
    let privateKey = input.wg_private_key;
    if (privateKey === undefined) {
      privateKey = generateWgKeyPair().privateKey;
      keyGenerated = true;
    }
    const ours = wgPublicKeyFromPrivate(privateKey);
    const issues = samePeerKeyIssue(input.wg_public_key, ours);
    if (issues.length) throw Invalid(issues);
    Object.assign(values, {
      wgEndpoint: input.wg_endpoint,
      wgPublicKey: input.wg_public_key,
      wgPresharedKeyEnc: input.wg_preshared_key ? ctx.secrets.encrypt(input.wg_preshared_key, secretAt.egress(id, "wg_preshared_key_enc")) : null,
      wgAllowedIps: input.wg_allowed_ips ?? "0.0.0.0/0",
      wgDnsServer: input.wg_dns_server,
      wgPeerAddress: input.wg_peer_address,
      wgPrivateKeyEnc: ctx.secrets.encrypt(privateKey, secretAt.egress(id, "wg_private_key_enc")),
      wgClientPublicKey: ours,
    });
  } else {
    Object.assign(values, storeProxyConfig(ctx.secrets, id, input.proxy_config!), { proxyDnsServer: input.proxy_dns_server ?? null });
  }
  try {
    return await ctx.db.transaction(async (tx) => {
      const [row] = await tx.insert(egressIps).values(values).returning();
      await recordEvent(tx, {
        type: "egress.created",
        message: `egress IP ${row!.ipAddress} (${row!.tunnelType}) created`,
        actorId: ctx.actor?.id,
        metadata: {
          egress_ip_id: row!.id,
          label: row!.label,
          ip_address: row!.ipAddress,
          tunnel_type: row!.tunnelType,
          key_generated: keyGenerated,
        },
      });
      return { egress_ip: renderEgress(row!, null) };
    });
  } catch (err) {
    if (isUniqueViolation(err, IP_UNIQUE)) throw IP_TAKEN();
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Read

/** `GET /v1/admin/egress-ips` with filters status, tunnel_type, health, bound. */
export async function listEgress({ ctx, query }: { ctx: ServiceContext; query: ListEgressQuery }) {
  const conds: SQL[] = [];
  if (query.status) conds.push(eq(egressIps.status, query.status));
  if (query.tunnel_type) conds.push(eq(egressIps.tunnelType, query.tunnel_type));
  if (query.health) conds.push(eq(egressIps.health, query.health));
  if (query.bound === "true") conds.push(isNotNull(hostEgressBindings.id));
  if (query.bound === "false") conds.push(isNull(hostEgressBindings.id));
  const where = conds.length ? and(...conds) : undefined;
  const rows = await loadEgressRows(ctx.db, where, query);
  const [counted] = await ctx.db
    .select({ total: count() })
    .from(egressIps)
    .leftJoin(hostEgressBindings, eq(hostEgressBindings.egressIpId, egressIps.id))
    .where(where);
  return {
    egress_ips: rows.map((r) => renderEgress(r.egress, r.binding)),
    total: counted?.total ?? 0,
    limit: query.limit,
    offset: query.offset,
  };
}

/** `GET /v1/admin/egress-ips/{ipID}`; a non-UUID id is simply not found (docs/api.md#validation). */
export async function getEgress({ ctx, egressId }: { ctx: ServiceContext; egressId: string }) {
  if (!isUuid(egressId)) throw EGRESS_NOT_FOUND();
  const [row] = await loadEgressRows(ctx.db, eq(egressIps.id, egressId.toLowerCase()));
  if (!row) throw EGRESS_NOT_FOUND();
  return { egress_ip: renderEgress(row.egress, row.binding) };
}

// ---------------------------------------------------------------------------------------------
// Update

/** Fields whose change alters the data plane (docs/api.md#egress-ips): health resets, a bound live host reapplies. */
const CONTROL_ONLY_FIELDS: ReadonlySet<string> = new Set(["label", "provider"]);

/**
 * `PUT /v1/admin/egress-ips/{ipID}` → 200 `{egress_ip}` (+ `task_id` when a reapply was enqueued).
 * Only fields present change; a request that changes nothing writes nothing (docs/api.md#events).
 */
export async function updateEgress({ ctx, egressId, input }: { ctx: ServiceContext; egressId: string; input: UpdateEgressInput }) {
  try {
    const out = await ctx.db.transaction(async (tx) => {
      const row = await lockEgress(tx, egressId);
      const patch: Partial<typeof egressIps.$inferInsert> = {};
      const changed: string[] = [];
      const issues: FieldIssue[] = [];
      const set = <K extends keyof typeof egressIps.$inferInsert>(field: string, key: K, value: (typeof egressIps.$inferInsert)[K]) => {
        patch[key] = value;
        changed.push(field);
      };

      if (input.tunnel_type !== undefined && input.tunnel_type !== row.tunnelType) {
        issues.push({ field: "tunnel_type", message: `cannot be changed (this egress IP is ${row.tunnelType})` });
      }
      issues.push(...issuesToDetails(foreignFieldIssues(row.tunnelType, input as Record<string, unknown>)));

      if (input.label !== undefined && input.label !== row.label) set("label", "label", input.label);
      if (input.provider !== undefined && input.provider !== row.provider) set("provider", "provider", input.provider);
      if (input.ip_address !== undefined && input.ip_address !== row.ipAddress) set("ip_address", "ipAddress", input.ip_address);
      if (input.status !== undefined && input.status !== row.status) set("status", "status", input.status);

      if (row.tunnelType === "wireguard") {
        if (input.wg_endpoint !== undefined && input.wg_endpoint !== row.wgEndpoint) set("wg_endpoint", "wgEndpoint", input.wg_endpoint);
        if (input.wg_public_key !== undefined && input.wg_public_key !== row.wgPublicKey) {
          set("wg_public_key", "wgPublicKey", input.wg_public_key);
        }
        if (input.wg_allowed_ips !== undefined && input.wg_allowed_ips !== row.wgAllowedIps) {
          set("wg_allowed_ips", "wgAllowedIps", input.wg_allowed_ips);
        }
        if (input.wg_dns_server !== undefined && input.wg_dns_server !== row.wgDnsServer) {
          set("wg_dns_server", "wgDnsServer", input.wg_dns_server);
        }
        if (input.wg_peer_address !== undefined && input.wg_peer_address !== row.wgPeerAddress) {
          set("wg_peer_address", "wgPeerAddress", input.wg_peer_address);
        }
        // Secrets: absent or "***" keep the stored value; null clears the (optional) preshared key.
        const psk = input.wg_preshared_key;
        if (psk === null && row.wgPresharedKeyEnc !== null) set("wg_preshared_key", "wgPresharedKeyEnc", null);
        if (psk && psk !== MASK && !storedEquals(ctx.secrets, row.wgPresharedKeyEnc, secretAt.egress(row.id, "wg_preshared_key_enc"), psk)) {
          set("wg_preshared_key", "wgPresharedKeyEnc", ctx.secrets.encrypt(psk, secretAt.egress(row.id, "wg_preshared_key_enc")));
        }
        let newPrivate: string | undefined;
        if (input.regenerate_wg_client_key === true) newPrivate = generateWgKeyPair().privateKey;
        else if (input.wg_private_key && input.wg_private_key !== MASK) {
          if (!storedEquals(ctx.secrets, row.wgPrivateKeyEnc, secretAt.egress(row.id, "wg_private_key_enc"), input.wg_private_key)) {
            newPrivate = input.wg_private_key;
          }
        }
        let ours = row.wgClientPublicKey;
        if (newPrivate !== undefined) {
          ours = wgPublicKeyFromPrivate(newPrivate);
          set("wg_private_key", "wgPrivateKeyEnc", ctx.secrets.encrypt(newPrivate, secretAt.egress(row.id, "wg_private_key_enc")));
          if (ours !== row.wgClientPublicKey) set("wg_client_public_key", "wgClientPublicKey", ours);
        }
        if (ours) issues.push(...samePeerKeyIssue(patch.wgPublicKey ?? row.wgPublicKey, ours));
      } else {
        if (input.proxy_config !== undefined) {
          const stored = { config: (row.proxyConfig ?? {}) as Record<string, unknown>, secrets: [] as ProxySecret[] };
          try {
            stored.secrets = decryptProxySecrets(ctx.secrets, row);
          } catch (err) {
            // Unreadable in place: a proxy_config that sends every secret again replaces it; one
            // that keeps a stored secret ("***" or absent) cannot be applied (409 secret_unreadable).
            if (!(err instanceof SecretUnreadableError)) throw err;
            const next = input.proxy_config as Record<string, unknown>;
            const kept = next.type === stored.config.type && splitProxySecrets(stored.config).secrets.some((s) => [undefined, MASK].includes(getAt(next, s.path) as string));
            if (kept) throw err;
          }
          const merged = mergeStoredSecrets(input.proxy_config as Record<string, unknown>, stored);
          const checked = checkProxyConfig(merged);
          if (!checked.ok) issues.push(...issuesToDetails(checked.issues, "proxy_config"));
          else if (!isDeepStrictEqual(checked.value, joinProxySecrets(stored.config, stored.secrets))) {
            const cols = storeProxyConfig(ctx.secrets, row.id, checked.value);
            set("proxy_config", "proxyConfig", cols.proxyConfig);
            patch.proxySecretsEnc = cols.proxySecretsEnc;
          }
        }
        if (input.proxy_dns_server !== undefined && input.proxy_dns_server !== row.proxyDnsServer) {
          set("proxy_dns_server", "proxyDnsServer", input.proxy_dns_server);
        }
      }
      if (issues.length) throw Invalid(issues);

      const [binding] = await tx.select().from(hostEgressBindings).where(eq(hostEgressBindings.egressIpId, row.id));
      if (changed.length === 0) return { egress_ip: renderEgress(row, binding ?? null), task: null };

      const dataPlane = changed.some((f) => !CONTROL_ONLY_FIELDS.has(f));
      if (dataPlane) patch.health = "unknown";
      const [updated] = await tx
        .update(egressIps)
        .set({ ...patch, updatedAt: ctx.clock() })
        .where(eq(egressIps.id, row.id))
        .returning();
      const [host] = binding ? await tx.select().from(hosts).where(eq(hosts.id, binding.hostId)) : [];
      const task = dataPlane && host ? await applyEgressTaskFor(tx, host, { requestedBy: ctx.actor!.id, egressIpId: row.id, requestId: ctx.requestId }) : null;
      await recordEvent(tx, {
        type: "egress.updated",
        message: `egress IP ${updated!.ipAddress} updated`,
        actorId: ctx.actor?.id,
        userId: host?.userId ?? null,
        hostId: host?.id ?? null,
        taskId: task?.id ?? null,
        metadata: { egress_ip_id: row.id, changed_fields: changed },
      });
      return { egress_ip: renderEgress(updated!, binding ?? null), task };
    });
    if (out.task) await ctx.enqueue(out.task);
    return out.task ? { egress_ip: out.egress_ip, task_id: out.task.id } : { egress_ip: out.egress_ip };
  } catch (err) {
    if (isUniqueViolation(err, IP_UNIQUE)) throw IP_TAKEN();
    throw err;
  }
}

/**
 * docs/api.md#egress-ips: a secret of the new proxy_config that is absent or "***" takes the stored value, when the
 * stored config is of the same type and has one. Anything else ("***" with nothing to keep) stays
 * as sent and fails validation.
 */
function mergeStoredSecrets(
  next: Record<string, unknown>,
  stored: { config: Record<string, unknown>; secrets: ProxySecret[] },
): Record<string, unknown> {
  const merged = structuredClone(next);
  if (merged.type === undefined || merged.type !== stored.config.type) return merged;
  for (const s of stored.secrets) {
    const current = getAt(merged, s.path);
    if (current === undefined || current === MASK) setAt(merged, s.path, s.value);
  }
  return merged;
}

// ---------------------------------------------------------------------------------------------
// Delete

/** `DELETE /v1/admin/egress-ips/{ipID}` → 204; 409 `egress_ip_in_use` while bound. */
export async function deleteEgress({ ctx, egressId }: { ctx: ServiceContext; egressId: string }): Promise<void> {
  try {
    await ctx.db.transaction(async (tx) => {
      // Binding creation locks the egress row too, so no binding can appear after this check.
      const row = await lockEgress(tx, egressId);
      const [binding] = await tx.select({ id: hostEgressBindings.id }).from(hostEgressBindings).where(eq(hostEgressBindings.egressIpId, row.id));
      if (binding) throw Conflict("egress_ip_in_use", "the egress IP is bound to a host; remove the binding first");
      const now = ctx.clock();
      await tx
        .update(tasks)
        .set({ status: "canceled", errorCode: "canceled", errorMessage: "superseded by the deletion of the egress IP", finishedAt: now })
        .where(and(eq(tasks.egressIpId, row.id), eq(tasks.kind, "egress.test"), eq(tasks.status, "pending")));
      // A running test is canceled cooperatively (docs/architecture.md#tasks): its containers go, no result is stored.
      await tx
        .update(tasks)
        .set({ cancelRequested: true })
        .where(and(eq(tasks.egressIpId, row.id), eq(tasks.kind, "egress.test"), eq(tasks.status, "running")));
      await tx.delete(egressIps).where(eq(egressIps.id, row.id));
      await recordEvent(tx, {
        type: "egress.deleted",
        message: `egress IP ${row.ipAddress} deleted`,
        actorId: ctx.actor?.id,
        metadata: { egress_ip_id: row.id, label: row.label, ip_address: row.ipAddress, tunnel_type: row.tunnelType },
      });
    });
  } catch (err) {
    // Belt and braces: the binding's foreign key is ON DELETE RESTRICT.
    if (isForeignKeyViolation(err)) throw Conflict("egress_ip_in_use", "the egress IP is bound to a host; remove the binding first");
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Data plane

export interface EgressSecrets {
  id: string;
  tunnelType: EgressIpRow["tunnelType"];
  ipAddress: string;
  status: EgressIpRow["status"];
  wg?: {
    /** Our private key. */
    privateKey: string;
    presharedKey: string | null;
    /** The peer's public key. */
    publicKey: string;
    endpoint: string;
    allowedIps: string;
    dnsServer: string;
    peerAddress: string;
  };
  proxy?: {
    /** The full sing-box outbound, secrets included, as validated (no defaults filled in). */
    config: Record<string, unknown>;
    /** `proxy_dns_server`; null means EGRESS_DEFAULT_DNS_SERVER (worker configuration). */
    dnsServer: string | null;
  };
}

/**
 * The decrypted configuration of an egress, for the worker's data plane only. Never render,
 * log or store what this returns.
 */
export async function loadEgressSecrets(db: DbOrTx, secrets: SecretBox, egressId: string): Promise<EgressSecrets> {
  if (!isUuid(egressId)) throw EGRESS_NOT_FOUND();
  const [row] = await db.select().from(egressIps).where(eq(egressIps.id, egressId.toLowerCase()));
  if (!row) throw EGRESS_NOT_FOUND();
  const base = { id: row.id, tunnelType: row.tunnelType, ipAddress: row.ipAddress, status: row.status };
  if (row.tunnelType === "wireguard") {
    return {
      ...base,
      wg: {
        privateKey: secrets.decrypt(row.wgPrivateKeyEnc!, secretAt.egress(row.id, "wg_private_key_enc")),
        presharedKey: row.wgPresharedKeyEnc ? secrets.decrypt(row.wgPresharedKeyEnc, secretAt.egress(row.id, "wg_preshared_key_enc")) : null,
        publicKey: row.wgPublicKey!,
        endpoint: row.wgEndpoint!,
        allowedIps: row.wgAllowedIps ?? "0.0.0.0/0",
        dnsServer: row.wgDnsServer!,
        peerAddress: row.wgPeerAddress!,
      },
    };
  }
  return {
    ...base,
    proxy: {
      config: joinProxySecrets((row.proxyConfig ?? {}) as Record<string, unknown>, decryptProxySecrets(secrets, row)),
      dnsServer: row.proxyDnsServer,
    },
  };
}

