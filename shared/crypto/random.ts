import { randomBytes } from "node:crypto";

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const LOWER_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789";

/**
 * Uniform random string over `alphabet` from a CSPRNG, by rejection sampling: bytes at or above
 * the largest multiple of the alphabet size are discarded so no character is favoured.
 */
export function randomString(length: number, alphabet: string = ALNUM): string {
  const n = alphabet.length;
  const limit = 256 - (256 % n);
  let out = "";
  while (out.length < length) {
    for (const b of randomBytes(length * 2)) {
      if (b < limit) out += alphabet[b % n];
      if (out.length === length) break;
    }
  }
  return out;
}

/** Generated passwords: 20 characters of [A-Za-z0-9] (docs/api.md#users). */
export const generatePassword = () => randomString(20, ALNUM);
/** Host short ids: 6 characters of [a-z0-9] (docs/api.md#hosts). */
export const generateShortId = () => randomString(6, LOWER_ALNUM);
