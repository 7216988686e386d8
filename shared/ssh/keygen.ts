// SSH key pair generation for `POST …/ssh-keys/generate`, host keys and the proxy's keys
// (docs/api.md#ssh-keys, docs/architecture.md#containers).
//
// Written on node:crypto rather than ssh2's generateKeyPairSync: ssh2 drops leading zero bytes of
// the ed25519 public key, so about one key in 256 came out 31 bytes long and invalid.

import { generateKeyPairSync, randomBytes } from "node:crypto";

import { MAX_PUBLIC_KEY_COMMENT_LENGTH, parsePublicKey } from "./public-key.js";

const PRIVATE_KEY_BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----";
const PRIVATE_KEY_END = "-----END OPENSSH PRIVATE KEY-----";

export interface GeneratedKeyPair {
  /** Unencrypted OpenSSH private key, ending with `-----END OPENSSH PRIVATE KEY-----\n`. Never store or log it. */
  privateKey: string;
  /** Normalised public key line: `ssh-ed25519 <base64>[ <comment>]`. */
  publicKey: string;
}

/** SSH wire `string`: uint32 length + bytes. */
function sshString(data: Buffer | string): Buffer {
  const b = Buffer.isBuffer(data) ? data : Buffer.from(data, "utf8");
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

const uint32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

/**
 * Generates an ed25519 key pair. `comment` is embedded in both halves (e.g. `alice@cloud-cli-proxy`)
 * and must satisfy the same rules as a user-supplied key's comment.
 */
export function generateEd25519KeyPair(comment: string): GeneratedKeyPair {
  // The comment lands verbatim on the public key line; a newline would smuggle in a second line.
  if (/[\p{Cc}\u2028\u2029]/u.test(comment) || [...comment].length > MAX_PUBLIC_KEY_COMMENT_LENGTH) {
    throw new RangeError(
      `key comment must be at most ${MAX_PUBLIC_KEY_COMMENT_LENGTH} characters without control characters`,
    );
  }
  const trimmed = comment.trim();
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const pub = Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url");
  const seed = Buffer.from(privateKey.export({ format: "jwk" }).d!, "base64url");
  if (pub.length !== 32 || seed.length !== 32) throw new Error("node:crypto returned a malformed ed25519 key");

  const blob = Buffer.concat([sshString("ssh-ed25519"), sshString(pub)]);
  // openssh-key-v1 (PROTOCOL.key): unencrypted, one key; the private section is padded to 8 bytes.
  const check = randomBytes(4);
  let priv = Buffer.concat([
    check,
    check,
    sshString("ssh-ed25519"),
    sshString(pub),
    sshString(Buffer.concat([seed, pub])),
    sshString(trimmed),
  ]);
  const pad: number[] = [];
  for (let i = 1; (priv.length + pad.length) % 8 !== 0; i++) pad.push(i);
  priv = Buffer.concat([priv, Buffer.from(pad)]);
  const body = Buffer.concat([
    Buffer.from("openssh-key-v1\0", "latin1"),
    sshString("none"),
    sshString("none"),
    sshString(""),
    uint32(1),
    sshString(blob),
    sshString(priv),
  ]).toString("base64");
  const lines = body.match(/.{1,70}/g) ?? [];
  const privateKeyText = `${PRIVATE_KEY_BEGIN}\n${lines.join("\n")}\n${PRIVATE_KEY_END}\n`;

  const line = `ssh-ed25519 ${blob.toString("base64")}${trimmed ? ` ${trimmed}` : ""}`;
  // Round-trip through the validator: what we hand out must be exactly what we would accept.
  const parsed = parsePublicKey(line);
  return { privateKey: privateKeyText, publicKey: parsed.normalized };
}

/** `SHA256:…` fingerprint of a public key line (as `ssh-keygen -l` prints it); throws `PublicKeyError`. */
export function fingerprintOf(publicKeyLine: string): string {
  return parsePublicKey(publicKeyLine).fingerprint;
}
