import { randomUUID } from "node:crypto";
import { and, eq } from "drizzle-orm";
import { generatePassword, generateShortId } from "../../crypto/random.js";
import { secretAt } from "../../crypto/secrets.js";
import type { Tx } from "../../db/client.js";
import { egressIps, hostEgressBindings, hosts } from "../../db/schema/index.js";
import { isUniqueViolation } from "../../db/pg-errors.js";
import { Conflict, NotFound } from "../../errors.js";
import type { ServiceContext } from "../context.js";
import { assertEgressChecksConfigured } from "../egress/checks.js";
import { recordEvent } from "../events.js";
import { insertTask } from "../tasks/create.js";
import { getLiveUser } from "../users/lookup.js";
import { isExpired } from "../users/render.js";
import { ENGINE_DEAD_AFTER_DEFAULT_SECONDS, placeHost } from "../engines/placement.js";
import { claimPoolMember } from "./pool-claim.js";
import { loadAdminHosts } from "./render.js";
import type { CreateHostInput } from "./schemas.js";

/** POST /v1/admin/hosts (docs/api.md#hosts-lifecycle): row, optional binding, `host.create` task, events. */
export async function createHost({ ctx, input }: { ctx: ServiceContext; input: CreateHostInput }) {
  const now = ctx.clock();
  if (input.egress_ip_id) await assertEgressChecksConfigured(ctx); // the binding is verified at start
  for (let attempt = 0; ; attempt++) {
    try {
      const { hostId, task } = await ctx.db.transaction(async (tx) => {
        const user = await getLiveUser(tx, input.user_id, { forUpdate: true });
        const egress = input.egress_ip_id ? await lockEgress(tx, input.egress_ip_id) : null;
        if (user.role === "admin") throw Conflict("admin_protected", "the admin account cannot have a host");
        if (user.status !== "active" || isExpired(user, now)) {
          throw Conflict("user_inactive", "the user is disabled or expired");
        }
        const [existing] = await tx.select({ id: hosts.id }).from(hosts).where(eq(hosts.userId, user.id));
        if (existing) throw Conflict("user_has_host", "the user already has a host");
        if (egress) await assertBindable(tx, egress);
        // A ready warm-pool member of this shape becomes the host (docs/architecture.md#warm-pool):
        // its id, short id, keys and address carry over, the host.create task then only
        // personalises it. Only on the first attempt: a short-id collision retries cold.
        // Placement (docs/engines.md#placement): the schedulable engines this shape fits on, best
        // first, locked until commit so a burst of creates cannot overfill one. A ready member on
        // any of them is taken (on the best that has one); otherwise the best engine, cold.
        const { ranked, live } = await placeHost(tx, {
          memoryMb: input.memory_limit_mb,
          cpus: input.cpu_limit,
          selector: input.placement.selector,
          strategy: input.placement.strategy,
          deadAfterSeconds: ctx.engineDeadAfterSeconds ?? ENGINE_DEAD_AFTER_DEFAULT_SECONDS,
        });
        // Members only on live engines: a member on an engine that stopped answering is no faster than cold elsewhere.
        const member = attempt === 0 && live.length ? await claimPoolMember(tx, ctx.secrets, input, live, now) : null;
        // The id is chosen here: the password's ciphertext is bound to its row (issue 10 §5).
        const id = member?.id ?? randomUUID();
        const [host] = await tx
          .insert(hosts)
          .values({
            id,
            userId: user.id,
            shortId: member?.shortId ?? generateShortId(),
            status: "pending",
            desiredState: "running",
            memoryLimitMb: input.memory_limit_mb,
            cpuLimit: input.cpu_limit,
            pidsLimit: input.pids_limit,
            diskLimitMb: input.disk_limit_mb ?? null,
            timezone: input.timezone,
            idleStopMinutes: input.idle_stop_minutes ?? null,
            idleCpuPercent: input.idle_cpu_percent ?? null,
            alwaysOn: input.always_on,
            sshPasswordEnc: ctx.secrets.encrypt(generatePassword(), secretAt.host(id, "ssh_password_enc")),
            engineId: member?.engineId ?? ranked[0]!,
            ...(member
              ? {
                  hostKeyPublic: member.hostKeyPublic,
                  hostKeyPrivateEnc: member.hostKeyPrivateEnc,
                  internalKeyPublic: member.internalKeyPublic,
                  internalKeyPrivateEnc: member.internalKeyPrivateEnc,
                  managementAddress: member.managementAddress,
                }
              : {}),
          })
          .returning();
        const task = await insertTask(tx, { kind: "host.create", hostId: host!.id, requestedBy: ctx.actor!.id, requestId: ctx.requestId });
        await recordEvent(tx, {
          type: "host.created",
          message: `host ${host!.shortId} created for ${user.username}`,
          actorId: ctx.actor?.id,
          userId: user.id,
          hostId: host!.id,
          taskId: task.id,
          metadata: {
            short_id: host!.shortId,
            memory_limit_mb: host!.memoryLimitMb,
            cpu_limit: Number(host!.cpuLimit),
            pids_limit: host!.pidsLimit,
            disk_limit_mb: host!.diskLimitMb,
            timezone: host!.timezone,
          },
        });
        if (egress) {
          const [binding] = await tx.insert(hostEgressBindings).values({ hostId: host!.id, egressIpId: egress.id }).returning();
          await recordEvent(tx, {
            type: "binding.created",
            message: `egress ${egress.ipAddress} bound to host ${host!.shortId}`,
            actorId: ctx.actor?.id,
            userId: user.id,
            hostId: host!.id,
            metadata: { binding_id: binding!.id, egress_ip_id: egress.id, ip_address: egress.ipAddress },
          });
        }
        return { hostId: host!.id, task };
      });
      await ctx.enqueue(task);
      const [host] = await loadAdminHosts(ctx.db, { hostIds: [hostId] });
      return { host: host!, task_id: task.id };
    } catch (err) {
      // One host per user and one host per egress are unique constraints: a concurrent race ends
      // in 409, never 500. A short-id collision (1 in 2 billion) just retries with a new id.
      if (isUniqueViolation(err, "hosts_user_uq")) throw Conflict("user_has_host", "the user already has a host");
      if (isUniqueViolation(err, "bindings_egress_uq")) {
        throw Conflict("egress_ip_already_bound", "the egress IP is bound to another host");
      }
      if (isUniqueViolation(err, "hosts_short_id_uq") && attempt < 5) continue;
      throw err;
    }
  }
}

async function lockEgress(tx: Tx, id: string) {
  const [egress] = await tx.select().from(egressIps).where(eq(egressIps.id, id)).for("update");
  if (!egress) throw NotFound("egress_ip_not_found", "egress IP not found");
  return egress;
}

async function assertBindable(tx: Tx, egress: typeof egressIps.$inferSelect): Promise<void> {
  const [bound] = await tx
    .select({ id: hostEgressBindings.id })
    .from(hostEgressBindings)
    .where(and(eq(hostEgressBindings.egressIpId, egress.id)));
  if (bound) throw Conflict("egress_ip_already_bound", "the egress IP is bound to another host");
  if (egress.status === "disabled") throw Conflict("egress_ip_disabled", "the egress IP is disabled");
}
