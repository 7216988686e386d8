import { createHash, timingSafeEqual } from "node:crypto";
import { and, eq, gt, isNull } from "drizzle-orm";
import ssh2 from "ssh2";
import { type SecretBox, secretAt, SecretUnreadableError } from "../shared/crypto/secrets.js";
import type { Db } from "../shared/db/client.js";
import { sshKeys, sshTickets } from "../shared/db/schema/index.js";
import type { Target } from "./resolve-target.js";

export type AuthMethod = "password" | "ticket" | "publickey";

const sha256 = (s: string | Buffer) => createHash("sha256").update(s).digest();

/**
 * The host's SSH password, compared in constant time on digests (lengths never leak). A stored
 * value that does not decrypt in this row (copied from another host, tampered: issue 10 §5)
 * matches nothing; rotating the password repairs it.
 */
export function passwordMatches(secrets: SecretBox, target: Target, presented: string): boolean {
  let expected: string;
  try {
    expected = secrets.decrypt(target.host.sshPasswordEnc, secretAt.host(target.host.id, "ssh_password_enc"));
  } catch (err) {
    if (err instanceof SecretUnreadableError) return false;
    throw err;
  }
  return timingSafeEqual(sha256(expected), sha256(presented));
}

/**
 * A bootstrap ticket for this host: unexpired, unused, and consumed atomically by the one
 * UPDATE that finds it (a second use, even concurrent, finds nothing).
 */
export async function consumeTicket(db: Db, target: Target, presented: string, now: Date): Promise<boolean> {
  const hash = sha256(presented).toString("hex");
  const rows = await db
    .update(sshTickets)
    .set({ usedAt: now })
    .where(
      and(
        eq(sshTickets.ticketHash, hash),
        eq(sshTickets.hostId, target.host.id),
        isNull(sshTickets.usedAt),
        gt(sshTickets.expiresAt, now),
      ),
    )
    .returning({ id: sshTickets.id });
  return rows.length === 1;
}

/** Is this public key (algorithm + blob) one of the owner's keys? Read from Postgres every time. */
export async function ownerHasKey(db: Db, target: Target, algo: string, blob: Buffer): Promise<string | null> {
  const rows = await db.select().from(sshKeys).where(eq(sshKeys.userId, target.owner.id));
  const b64 = blob.toString("base64");
  for (const k of rows) {
    const [alg, data] = k.publicKey.split(/\s+/);
    // ssh2 reports RSA keys as ssh-rsa whatever signature algorithm (rsa-sha2-*) is used.
    if (data === b64 && (alg === algo || (alg === "ssh-rsa" && algo.startsWith("rsa-sha2-")))) return k.publicKey;
  }
  return null;
}

export function signatureVerifies(publicKeyLine: string, data: Buffer, signature: Buffer, hashAlgo?: string): boolean {
  const parsed = ssh2.utils.parseKey(publicKeyLine);
  if (parsed instanceof Error) return false;
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key) return false;
  return key.verify(data, signature, hashAlgo as never) === true;
}
