// SSH key pair generation for `POST …/ssh-keys/generate` (behaviour.md §3.4).

// ssh2 is CommonJS and Node's ESM loader cannot see `utils` as a named export
// ("Named export 'utils' not found"), so it must come through the default import.
import ssh2 from 'ssh2';

import { MAX_PUBLIC_KEY_COMMENT_LENGTH, parsePublicKey } from './public-key.js';

const PRIVATE_KEY_BEGIN = '-----BEGIN OPENSSH PRIVATE KEY-----';
const PRIVATE_KEY_END = '-----END OPENSSH PRIVATE KEY-----';

export interface GeneratedKeyPair {
  /** Unencrypted OpenSSH private key, ending with `-----END OPENSSH PRIVATE KEY-----\n`. Never store or log it. */
  privateKey: string;
  /** Normalised public key line: `ssh-ed25519 <base64>[ <comment>]`. */
  publicKey: string;
}

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
  const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment: comment.trim() });

  const privateKey = pair.private.trimEnd() + '\n';
  if (!privateKey.startsWith(PRIVATE_KEY_BEGIN + '\n') || !privateKey.endsWith('\n' + PRIVATE_KEY_END + '\n')) {
    throw new Error('ssh2 returned a private key that is not in OpenSSH format');
  }
  // Round-trip through the validator: what we hand out must be exactly what we would accept.
  const parsed = parsePublicKey(pair.public);
  if (parsed.keyType !== 'ed25519') {
    throw new Error(`ssh2 generated a ${parsed.algorithm} key instead of ssh-ed25519`);
  }
  return { privateKey, publicKey: parsed.normalized };
}

/** `SHA256:…` fingerprint of a public key line (as `ssh-keygen -l` prints it); throws `PublicKeyError`. */
export function fingerprintOf(publicKeyLine: string): string {
  return parsePublicKey(publicKeyLine).fingerprint;
}
