import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

/**
 * AES-256-GCM for reversible secrets at rest (behaviour.md §1.6, §10.5).
 * Ciphertext format: `v<N>:<base64(iv[12] | tag[16] | ciphertext)>`, where N names the key, so
 * SECRETS_KEY can rotate while older ciphertexts stay readable through SECRETS_KEY_PREVIOUS.
 */
export interface SecretBox {
  readonly currentVersion: number;
  encrypt(plaintext: string): string;
  decrypt(ciphertext: string): string;
  versionOf(ciphertext: string): number;
}

export class UnknownKeyVersionError extends Error {
  constructor(readonly version: number) {
    super(`no secrets key for version v${version} (set it in SECRETS_KEY_PREVIOUS)`);
    this.name = "UnknownKeyVersionError";
  }
}

function parseKey(spec: string): { version: number; key: Buffer } {
  const m = /^v(\d+):([A-Za-z0-9+/]{43}=)$/.exec(spec.trim());
  if (!m) throw new Error("secrets key must be v<N>:<base64 of 32 bytes>");
  const key = Buffer.from(m[2]!, "base64");
  if (key.length !== 32) throw new Error("secrets key must be 32 bytes");
  return { version: Number(m[1]), key };
}

export function createSecretBox(current: string, previous = ""): SecretBox {
  const cur = parseKey(current);
  const keys = new Map<number, Buffer>([[cur.version, cur.key]]);
  for (const spec of previous.split(",").map((s) => s.trim()).filter(Boolean)) {
    const k = parseKey(spec);
    if (!keys.has(k.version)) keys.set(k.version, k.key);
  }
  const versionOf = (ciphertext: string): number => {
    const m = /^v(\d+):/.exec(ciphertext);
    if (!m) throw new Error("malformed ciphertext");
    return Number(m[1]);
  };
  return {
    currentVersion: cur.version,
    versionOf,
    encrypt(plaintext) {
      const iv = randomBytes(12);
      const cipher = createCipheriv("aes-256-gcm", cur.key, iv);
      const ct = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
      return `v${cur.version}:${Buffer.concat([iv, cipher.getAuthTag(), ct]).toString("base64")}`;
    },
    decrypt(ciphertext) {
      const version = versionOf(ciphertext);
      const key = keys.get(version);
      if (!key) throw new UnknownKeyVersionError(version);
      const raw = Buffer.from(ciphertext.slice(ciphertext.indexOf(":") + 1), "base64");
      if (raw.length < 28) throw new Error("malformed ciphertext");
      const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, 12));
      decipher.setAuthTag(raw.subarray(12, 28));
      return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString("utf8");
    },
  };
}
