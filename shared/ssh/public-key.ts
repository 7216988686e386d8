// Validation and normalisation of user-supplied SSH public keys (docs/api.md#ssh-keys).
//
// Pure logic: no I/O. The wire format is parsed here rather than by a library so that every
// rule is explicit: these keys end up in the proxy's auth path and in hosts' authorized_keys,
// so anything we cannot fully account for is rejected.

import { createHash, createPublicKey } from 'node:crypto';

/** Upper bound on the raw `public_key` field (docs/api.md#ssh-keys), in UTF-8 bytes, checked before trimming. */
export const MAX_PUBLIC_KEY_INPUT_BYTES = 16 * 1024;
/** Upper bound on the comment, in characters (code points). */
export const MAX_PUBLIC_KEY_COMMENT_LENGTH = 255;
/** Smallest accepted RSA modulus. */
export const MIN_RSA_BITS = 2048;
// OpenSSH's own ceiling (SSHBUF_MAX_BIGNUM); the 16 KiB input limit keeps us well below it anyway.
const MAX_RSA_BITS = 16384;

export type PublicKeyAlgorithm =
  | 'ssh-ed25519'
  | 'ecdsa-sha2-nistp256'
  | 'ecdsa-sha2-nistp384'
  | 'ecdsa-sha2-nistp521'
  | 'ssh-rsa';

export type PublicKeyType = 'ed25519' | 'ecdsa' | 'rsa';

export interface ParsedPublicKey {
  algorithm: PublicKeyAlgorithm;
  keyType: PublicKeyType;
  /** The decoded key blob (SSH wire format). */
  blob: Buffer;
  /** Canonical base64 of `blob`. */
  base64: string;
  comment: string | null;
  /** `SHA256:` + unpadded base64 of sha256(blob), exactly as `ssh-keygen -l` prints it. */
  fingerprint: string;
  /** `<algorithm> <base64>[ <comment>]` */
  normalized: string;
  /** Key size as `ssh-keygen -l` reports it (RSA modulus bits, curve size, 256 for ed25519). */
  bits: number;
}

export type PublicKeyErrorReason =
  | 'not_a_string'
  | 'too_long'
  | 'empty'
  | 'multiple_keys'
  | 'options_not_allowed'
  | 'dsa_not_supported'
  | 'certificate_not_supported'
  | 'security_key_not_supported'
  | 'unsupported_algorithm'
  | 'malformed'
  | 'rsa_too_short'
  | 'invalid_comment';

/** A rejected key. `message` is safe to show to the caller (400 detail on field `public_key`). */
export class PublicKeyError extends Error {
  override readonly name = 'PublicKeyError';
  readonly field = 'public_key';
  readonly reason: PublicKeyErrorReason;

  constructor(reason: PublicKeyErrorReason, message: string) {
    super(message);
    this.reason = reason;
  }
}

type AlgorithmInfo =
  | { keyType: 'ed25519' | 'rsa' }
  // Curve identifier inside the blob, uncompressed point length, JWK curve name, key size.
  | { keyType: 'ecdsa'; curve: { id: string; pointLength: number; jwk: string; bits: number } };

const ALGORITHMS: ReadonlyMap<string, AlgorithmInfo> = new Map<PublicKeyAlgorithm, AlgorithmInfo>([
  ['ssh-ed25519', { keyType: 'ed25519' }],
  ['ecdsa-sha2-nistp256', { keyType: 'ecdsa', curve: { id: 'nistp256', pointLength: 65, jwk: 'P-256', bits: 256 } }],
  ['ecdsa-sha2-nistp384', { keyType: 'ecdsa', curve: { id: 'nistp384', pointLength: 97, jwk: 'P-384', bits: 384 } }],
  ['ecdsa-sha2-nistp521', { keyType: 'ecdsa', curve: { id: 'nistp521', pointLength: 133, jwk: 'P-521', bits: 521 } }],
  ['ssh-rsa', { keyType: 'rsa' }],
]);

const ACCEPTED_LIST = [...ALGORITHMS.keys()].join(', ');

// Field separators in authorized_keys lines are spaces or tabs.
const SEP = /[ \t]+/;
// Anything that looks like an SSH key type name (accepted or not). Used to recognise an options
// prefix in front of a key and a second key hiding in what would otherwise be the comment.
const KEY_TYPE_LIKE = /^(?:ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9.@-]+|[a-z0-9-]+-cert-v0[0-9]@openssh\.com|[a-z0-9.-]+@openssh\.com|rsa-sha2-(?:256|512))$/;
// Every SSH key blob starts with a uint32 length < 2^24, so its base64 starts with "AAAA".
const BLOB_LIKE = /^AAAA[A-Za-z0-9+/]+={0,2}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
// C0, DEL, C1, plus the Unicode line/paragraph separators (they would split the line for any
// consumer that treats them as newlines).
const CONTROL = /[\p{Cc}\u2028\u2029]/u;

/**
 * Validates one public key in authorized_keys format (without options) and returns its
 * normalised form. Throws `PublicKeyError` with a human-readable reason otherwise.
 */
export function parsePublicKey(input: string): ParsedPublicKey {
  if (typeof input !== 'string') {
    throw new PublicKeyError('not_a_string', 'public key must be a string');
  }
  // `length` is a lower bound on the UTF-8 size; the cheap check first avoids encoding huge input.
  if (input.length > MAX_PUBLIC_KEY_INPUT_BYTES || Buffer.byteLength(input, 'utf8') > MAX_PUBLIC_KEY_INPUT_BYTES) {
    throw new PublicKeyError('too_long', `public key must be at most ${MAX_PUBLIC_KEY_INPUT_BYTES} bytes`);
  }
  const line = input.trim();
  if (line === '') {
    throw new PublicKeyError('empty', 'public key is empty');
  }
  if (/[\r\n\u2028\u2029]/.test(line)) {
    throw new PublicKeyError('multiple_keys', 'public key must be exactly one key on a single line');
  }

  const [algToken, afterAlg] = splitField(line);
  const info = ALGORITHMS.get(algToken);
  if (info === undefined) {
    throw rejectAlgorithm(algToken, afterAlg);
  }
  const algorithm = algToken as PublicKeyAlgorithm;

  if (afterAlg === '') {
    throw new PublicKeyError('malformed', 'public key is missing the base64 key data after the algorithm');
  }
  const [base64, comment] = splitField(afterAlg);
  const blob = decodeBase64Strict(base64);
  const bits = checkBlob(algorithm, info, blob);

  if (comment !== '') {
    if (CONTROL.test(comment)) {
      throw new PublicKeyError('invalid_comment', 'public key comment must not contain control characters');
    }
    if ([...comment].length > MAX_PUBLIC_KEY_COMMENT_LENGTH) {
      throw new PublicKeyError(
        'invalid_comment',
        `public key comment must be at most ${MAX_PUBLIC_KEY_COMMENT_LENGTH} characters`,
      );
    }
    if (containsAnotherKey(comment)) {
      throw new PublicKeyError('multiple_keys', 'public key must contain exactly one key');
    }
  }

  const fingerprint = 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
  return {
    algorithm,
    keyType: info.keyType,
    blob,
    base64,
    comment: comment === '' ? null : comment,
    fingerprint,
    normalized: comment === '' ? `${algorithm} ${base64}` : `${algorithm} ${base64} ${comment}`,
    bits,
  };
}

/** Splits off the first whitespace-separated field; the rest keeps its internal spacing. */
function splitField(s: string): [string, string] {
  const m = SEP.exec(s);
  if (m === null) return [s, ''];
  return [s.slice(0, m.index), s.slice(m.index + m[0].length)];
}

function rejectAlgorithm(token: string, rest: string): PublicKeyError {
  if (token === 'ssh-dss') {
    return new PublicKeyError('dsa_not_supported', 'DSA keys (ssh-dss) are not supported');
  }
  if (/-cert-v0[0-9]@openssh\.com$/.test(token)) {
    return new PublicKeyError(
      'certificate_not_supported',
      'SSH certificates are not supported; provide the plain public key',
    );
  }
  if (token.startsWith('sk-')) {
    return new PublicKeyError('security_key_not_supported', 'security-key (sk-…) keys are not supported');
  }
  if (!KEY_TYPE_LIKE.test(token) && rest.split(SEP).some((t) => KEY_TYPE_LIKE.test(t))) {
    // Something precedes what looks like the key type: an authorized_keys options field
    // (`from="…"`, `no-pty`, `command="…"`, …). Options are managed by the service, not by users.
    return new PublicKeyError('options_not_allowed', 'authorized_keys options are not allowed in front of the key');
  }
  const shown = /^[\x21-\x7e]{1,64}$/.test(token) ? ` "${token}"` : '';
  return new PublicKeyError(
    'unsupported_algorithm',
    `unsupported or unrecognised key type${shown}; expected one of ${ACCEPTED_LIST}`,
  );
}

/** True when the would-be comment contains `<key type> <blob>`, i.e. a second key on the line. */
function containsAnotherKey(comment: string): boolean {
  const tokens = comment.split(SEP);
  for (let i = 0; i + 1 < tokens.length; i++) {
    if (KEY_TYPE_LIKE.test(tokens[i] ?? '') && BLOB_LIKE.test(tokens[i + 1] ?? '')) return true;
  }
  return false;
}

function decodeBase64Strict(s: string): Buffer {
  // Buffer.from(…, 'base64') silently skips invalid characters and ignores non-zero padding bits;
  // requiring the canonical re-encoding to match closes both holes.
  if (s.length % 4 !== 0 || !BASE64.test(s)) {
    throw new PublicKeyError('malformed', 'public key data is not valid base64');
  }
  const blob = Buffer.from(s, 'base64');
  if (blob.toString('base64') !== s) {
    throw new PublicKeyError('malformed', 'public key data is not canonical base64');
  }
  return blob;
}

/** Sequential reader over SSH wire-format fields (RFC 4251 docs/api.md#egress-ips). */
class WireReader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}

  string(): Buffer {
    if (this.buf.length - this.pos < 4) throw truncated();
    const len = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    if (len > this.buf.length - this.pos) throw truncated();
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }

  /** A positive mpint, returned as its magnitude without the sign byte. */
  positiveMpint(what: string): Buffer {
    const raw = this.string();
    if (raw.length === 0) {
      throw new PublicKeyError('malformed', `public key ${what} is zero`);
    }
    const first = raw[0] ?? 0;
    if (first & 0x80) {
      throw new PublicKeyError('malformed', `public key ${what} is negative`);
    }
    // RFC 4251: "Unnecessary leading bytes with the value 0 or 255 MUST NOT be included."
    if (first === 0 && (raw.length === 1 || ((raw[1] ?? 0) & 0x80) === 0)) {
      throw new PublicKeyError('malformed', `public key ${what} is not minimally encoded`);
    }
    return first === 0 ? raw.subarray(1) : raw;
  }

  end(): void {
    if (this.pos !== this.buf.length) {
      throw new PublicKeyError('malformed', 'public key data has trailing bytes');
    }
  }
}

function truncated(): PublicKeyError {
  return new PublicKeyError('malformed', 'public key data is truncated or malformed');
}

/** Checks the blob against the algorithm named on the line; returns the key size in bits. */
function checkBlob(algorithm: PublicKeyAlgorithm, info: AlgorithmInfo, blob: Buffer): number {
  const r = new WireReader(blob);
  const inner = r.string();
  if (!inner.equals(Buffer.from(algorithm))) {
    throw new PublicKeyError('malformed', `public key data does not match the key type ${algorithm}`);
  }

  switch (info.keyType) {
    case 'ed25519': {
      const key = r.string();
      r.end();
      if (key.length !== 32) {
        throw new PublicKeyError('malformed', 'ed25519 public key must be 32 bytes');
      }
      return 256;
    }
    case 'ecdsa': {
      const { curve } = info;
      const curveId = r.string();
      const point = r.string();
      r.end();
      if (!curveId.equals(Buffer.from(curve.id))) {
        throw new PublicKeyError('malformed', `public key curve does not match the key type ${algorithm}`);
      }
      if (point.length !== curve.pointLength || point[0] !== 0x04) {
        throw new PublicKeyError('malformed', `${algorithm} public key must be an uncompressed ${curve.id} point`);
      }
      assertPointOnCurve(curve.jwk, point);
      return curve.bits;
    }
    case 'rsa': {
      const e = r.positiveMpint('RSA exponent');
      const n = r.positiveMpint('RSA modulus');
      r.end();
      const bits = bitLength(n);
      if (bits < MIN_RSA_BITS) {
        throw new PublicKeyError(
          'rsa_too_short',
          `RSA keys must be at least ${MIN_RSA_BITS} bits (this one has ${bits})`,
        );
      }
      if (bits > MAX_RSA_BITS) {
        throw new PublicKeyError('malformed', `RSA keys must be at most ${MAX_RSA_BITS} bits`);
      }
      // A real modulus is a product of odd primes; a real exponent is odd, > 1 and smaller than n.
      const eOdd = ((e[e.length - 1] ?? 0) & 1) === 1;
      const nOdd = ((n[n.length - 1] ?? 0) & 1) === 1;
      if (!nOdd || !eOdd || (e.length === 1 && e[0] === 1) || e.length > n.length) {
        throw new PublicKeyError('malformed', 'RSA public key parameters are invalid');
      }
      return bits;
    }
  }
}

function bitLength(magnitude: Buffer): number {
  const first = magnitude[0] ?? 0;
  return (magnitude.length - 1) * 8 + (32 - Math.clz32(first));
}

/** OpenSSH validates that ECDSA public points lie on the curve; so do we (via OpenSSL). */
function assertPointOnCurve(crv: string, point: Buffer): void {
  const half = (point.length - 1) / 2;
  try {
    createPublicKey({
      key: {
        kty: 'EC',
        crv,
        x: point.subarray(1, 1 + half).toString('base64url'),
        y: point.subarray(1 + half).toString('base64url'),
      },
      format: 'jwk',
    });
  } catch {
    throw new PublicKeyError('malformed', 'ECDSA public key point is not on the curve');
  }
}
