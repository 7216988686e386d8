import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";

/**
 * WireGuard keys in the format of `wg genkey` / `wg pubkey`: standard base64 of the raw 32-byte
 * X25519 key (44 characters, one `=`). node:crypto speaks X25519 natively, so no `wg` binary is
 * needed in the api process.
 */

/** Canonical base64 of exactly 32 bytes: 43 characters, the last of them carrying 4 zero bits, then `=`. */
export const WG_KEY_PATTERN = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

export const isWgKey = (v: string): boolean => WG_KEY_PATTERN.test(v);

export interface WgKeyPair {
  privateKey: string;
  publicKey: string;
}

/** PKCS#8 wrapping of a raw X25519 private key (RFC 8410): the fixed DER header before the 32 bytes. */
const PKCS8_X25519_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");

const fromB64url = (s: string) => Buffer.from(s, "base64url");

/**
 * Clamp as `wg genkey` does (RFC 7748 docs/api.md#egress-ips). X25519 clamps during scalar multiplication anyway,
 * so the public key is the same either way; clamping makes our stored keys byte-identical to
 * what the reference tool would print.
 */
function clamp(raw: Buffer): Buffer {
  const k = Buffer.from(raw);
  k[0]! &= 248;
  k[31]! &= 127;
  k[31]! |= 64;
  return k;
}

/** The public key of a base64 private key (`wg pubkey`). Throws on a malformed key. */
export function wgPublicKeyFromPrivate(privateKey: string): string {
  if (!isWgKey(privateKey)) throw new Error("a WireGuard key is base64 of 32 bytes");
  const der = Buffer.concat([PKCS8_X25519_PREFIX, Buffer.from(privateKey, "base64")]);
  const spki = createPublicKey(createPrivateKey({ key: der, format: "der", type: "pkcs8" })).export({ format: "der", type: "spki" });
  // The SPKI encoding of an X25519 key ends with the raw 32-byte public key.
  return spki.subarray(spki.length - 32).toString("base64");
}

/** A fresh key pair (`wg genkey | tee priv | wg pubkey`). */
export function generateWgKeyPair(): WgKeyPair {
  const { privateKey } = generateKeyPairSync("x25519");
  const d = privateKey.export({ format: "jwk" }).d;
  if (!d) throw new Error("X25519 private key export failed");
  const priv = clamp(fromB64url(d)).toString("base64");
  return { privateKey: priv, publicKey: wgPublicKeyFromPrivate(priv) };
}
