import { eq } from "drizzle-orm";
import { type SecretBox, secretAt } from "../../crypto/secrets.js";
import type { Db } from "../../db/client.js";
import { systemKeys } from "../../db/schema/index.js";
import { generateEd25519KeyPair } from "../../ssh/keygen.js";

export const SSH_PROXY_HOST_KEY = "ssh_proxy_host_key";

/**
 * A key pair shared by every replica, created on first use. Concurrent first starts race on the
 * primary key; the loser's insert does nothing and everyone reads the winner's key.
 */
export async function ensureSystemKeyPair(
  db: Db,
  secrets: SecretBox,
  name: string,
  comment = "cloud-cli-proxy",
): Promise<{ privateKey: string; publicKey: string }> {
  const [existing] = await db.select().from(systemKeys).where(eq(systemKeys.name, name));
  if (!existing) {
    const pair = generateEd25519KeyPair(comment);
    await db
      .insert(systemKeys)
      .values({ name, privateKeyEnc: secrets.encrypt(pair.privateKey, secretAt.systemKey(name)), publicKey: pair.publicKey })
      .onConflictDoNothing();
  }
  const [row] = await db.select().from(systemKeys).where(eq(systemKeys.name, name));
  if (!row) throw new Error(`system key ${name} could not be created`);
  return { privateKey: secrets.decrypt(row.privateKeyEnc, secretAt.systemKey(name)), publicKey: row.publicKey };
}
