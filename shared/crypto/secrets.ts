import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

/**
 * AES-256-GCM for reversible secrets at rest (docs/api.md#secrets, docs/operations.md#rotate-keys).
 *
 * Ciphertext formats (N names the key, so SECRETS_KEY can rotate while older ciphertexts stay
 * readable through SECRETS_KEY_PREVIOUS):
 * - `v<N>a:<base64(iv[12] | tag[16] | ciphertext)>` — current. The GCM additional authenticated
 *   data is the place the value belongs to (table, column, row key), so a ciphertext copied into
 *   another row or column — by SQL injection, a restore mix-up or a hand edit — fails to decrypt
 *   instead of handing one host's or egress's secret to another (issue 10 §5).
 * - `v<N>:<base64(…)>` — legacy, written before the binding existed, no additional data. Still
 *   read (anywhere) so an upgrade loses nothing; `secrets:rotate` rewrites every one of them in the
 *   current format, after which none is left.
 */

/** Every column that holds a SecretBox ciphertext, by table, with the column its row key is in. */
export const SECRET_COLUMNS = {
  hosts: { key: "id", columns: ["ssh_password_enc", "internal_key_private_enc", "host_key_private_enc"] },
  egress_ips: { key: "id", columns: ["wg_private_key_enc", "wg_preshared_key_enc", "proxy_secrets_enc"] },
  system_keys: { key: "name", columns: ["private_key_enc"] },
  // Warm-pool members' keys (docs/architecture.md#warm-pool): re-encrypted for `hosts` at claim.
  host_pool: { key: "id", columns: ["internal_key_private_enc", "host_key_private_enc"] },
  // The client key an engine's workers present to its Docker API over mutual TLS (docs/engines.md).
  engines: { key: "id", columns: ["tls_key_enc"] },
  // A webhook's HMAC signing secret (docs/api.md#webhooks).
  webhooks: { key: "id", columns: ["secret_enc"] },
} as const satisfies Record<string, { key: string; columns: readonly string[] }>;

export type SecretTable = keyof typeof SECRET_COLUMNS;
export type SecretColumn<T extends SecretTable> = (typeof SECRET_COLUMNS)[T]["columns"][number];

/** Where a secret lives: the SQL table and column names and the row's key (id, or name for system_keys). */
export type SecretLocation = { [T in SecretTable]: { table: T; column: SecretColumn<T>; row: string } }[SecretTable];

export const secretAt = {
  host: (id: string, column: SecretColumn<"hosts">): SecretLocation => ({ table: "hosts", column, row: id }),
  egress: (id: string, column: SecretColumn<"egress_ips">): SecretLocation => ({ table: "egress_ips", column, row: id }),
  systemKey: (name: string): SecretLocation => ({ table: "system_keys", column: "private_key_enc", row: name }),
  pool: (id: string, column: SecretColumn<"host_pool">): SecretLocation => ({ table: "host_pool", column, row: id }),
  engine: (id: string): SecretLocation => ({ table: "engines", column: "tls_key_enc", row: id }),
  webhook: (id: string): SecretLocation => ({ table: "webhooks", column: "secret_enc", row: id }),
};

export interface SecretBox {
  readonly currentVersion: number;
  encrypt(plaintext: string, at: SecretLocation): string;
  /** Throws UnknownKeyVersionError or SecretUnreadableError; never returns a wrong value. */
  decrypt(ciphertext: string, at: SecretLocation): string;
  versionOf(ciphertext: string): number;
  /** Written with the current key and bound to its place: nothing for `secrets:rotate` to do. */
  isCurrent(ciphertext: string): boolean;
}

export class UnknownKeyVersionError extends Error {
  constructor(readonly version: number) {
    super(`no secrets key for version v${version} (set it in SECRETS_KEY_PREVIOUS)`);
    this.name = "UnknownKeyVersionError";
  }
}

/**
 * A stored secret that does not decrypt where it is: malformed, tampered with, or written for
 * another row or column. Names the place, never the value.
 */
export class SecretUnreadableError extends Error {
  constructor(
    readonly at: SecretLocation,
    readonly reason: "malformed" | "authentication_failed",
  ) {
    super(`the secret in ${at.table}.${at.column} of ${at.row} cannot be decrypted (${reason.replace("_", " ")})`);
    this.name = "SecretUnreadableError";
  }
}

const FORMAT = /^v(\d+)(a?):([A-Za-z0-9+/]*={0,2})$/;

/** The additional data of a bound ciphertext; NUL-separated, so no two locations share one. */
const additionalData = (at: SecretLocation) => Buffer.from(`ccp-secret\0${at.table}\0${at.column}\0${at.row}`, "utf8");

function parseKey(spec: string): { version: number; key: Buffer } {
  const m = /^v(\d+):([A-Za-z0-9+/]{43}=)$/.exec(spec.trim());
  if (!m) throw new Error("secrets key must be v<N>:<base64 of 32 bytes>");
  const key = Buffer.from(m[2]!, "base64");
  if (key.length !== 32) throw new Error("secrets key must be 32 bytes");
  return { version: Number(m[1]), key };
}

function seal(key: Buffer, plaintext: string, aad: Buffer | null): Buffer {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  if (aad) cipher.setAAD(aad);
  const ct = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), ct]);
}

export function createSecretBox(current: string, previous = ""): SecretBox {
  const cur = parseKey(current);
  const keys = new Map<number, Buffer>([[cur.version, cur.key]]);
  for (const spec of previous.split(",").map((s) => s.trim()).filter(Boolean)) {
    const k = parseKey(spec);
    if (!keys.has(k.version)) keys.set(k.version, k.key);
  }
  const versionOf = (ciphertext: string): number => {
    const m = /^v(\d+)a?:/.exec(ciphertext);
    if (!m) throw new Error("malformed ciphertext");
    return Number(m[1]);
  };
  return {
    currentVersion: cur.version,
    versionOf,
    isCurrent: (ciphertext) => ciphertext.startsWith(`v${cur.version}a:`),
    encrypt(plaintext, at) {
      return `v${cur.version}a:${seal(cur.key, plaintext, additionalData(at)).toString("base64")}`;
    },
    decrypt(ciphertext, at) {
      const m = FORMAT.exec(ciphertext);
      if (!m) throw new SecretUnreadableError(at, "malformed");
      const version = Number(m[1]);
      const key = keys.get(version);
      if (!key) throw new UnknownKeyVersionError(version);
      const raw = Buffer.from(m[3]!, "base64");
      if (raw.length < 28) throw new SecretUnreadableError(at, "malformed");
      const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, 12));
      if (m[2] === "a") decipher.setAAD(additionalData(at));
      decipher.setAuthTag(raw.subarray(12, 28));
      try {
        return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString("utf8");
      } catch {
        // GCM's "Unsupported state or unable to authenticate data": wrong key, tampered, or moved.
        throw new SecretUnreadableError(at, "authentication_failed");
      }
    },
  };
}

/**
 * A ciphertext in the legacy, unbound `v<N>:` format, as releases before the binding wrote it.
 * Only tests and the migration's own checks need it: production code never writes this format.
 */
export function encryptLegacy(keySpec: string, plaintext: string): string {
  const { version, key } = parseKey(keySpec);
  return `v${version}:${seal(key, plaintext, null).toString("base64")}`;
}
