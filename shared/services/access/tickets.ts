import { createHash } from "node:crypto";
import { randomString } from "../../crypto/random.js";
import type { Tx } from "../../db/client.js";
import { sshTickets } from "../../db/schema/index.js";

/**
 * A one-time SSH login ticket (docs/api.md#bootstrap, docs/api.md#entry): `ccpt_` + 32 characters [A-Za-z0-9]
 * (≈190 bits), valid for one successful login to this host until `expiresAt`. Only its SHA-256 is
 * stored; the SSH proxy hashes what it is given and consumes the row atomically
 * (sshd/credentials.ts). Both access scripts receive one of these, never the host's long-lived
 * SSH password.
 */
export async function mintSshTicket(
  tx: Tx,
  opts: { hostId: string; userId: string; taskId: string | null; now: Date; ttlSeconds: number },
): Promise<{ ticket: string; expiresAt: Date }> {
  const ticket = `ccpt_${randomString(32)}`;
  const expiresAt = new Date(opts.now.getTime() + opts.ttlSeconds * 1000);
  await tx.insert(sshTickets).values({
    taskId: opts.taskId,
    hostId: opts.hostId,
    userId: opts.userId,
    ticketHash: createHash("sha256").update(ticket).digest("hex"),
    expiresAt,
  });
  return { ticket, expiresAt };
}
