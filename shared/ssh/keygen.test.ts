import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { fingerprintOf, generateEd25519KeyPair } from './keygen.js';
import { parsePublicKey, PublicKeyError } from './public-key.js';

const SSH_KEYGEN = '/usr/bin/ssh-keygen';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ccp-keygen-test-'));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function keygen(args: string[]): string {
  return execFileSync(SSH_KEYGEN, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Writes the private key where ssh-keygen will read it (it refuses group/world-readable files). */
function writePrivate(name: string, privateKey: string): string {
  const file = join(dir, name);
  writeFileSync(file, privateKey, { mode: 0o600 });
  return file;
}

describe('generateEd25519KeyPair', () => {
  it('returns an unencrypted OpenSSH private key with one trailing newline', () => {
    const { privateKey } = generateEd25519KeyPair('alice@cloud-cli-proxy');
    expect(privateKey.startsWith('-----BEGIN OPENSSH PRIVATE KEY-----\n')).toBe(true);
    expect(privateKey.endsWith('\n-----END OPENSSH PRIVATE KEY-----\n')).toBe(true);
    expect(privateKey.endsWith('\n\n')).toBe(false);
    // The body is the openssh-key-v1 container with cipher "none".
    const body = privateKey.split('\n').slice(1, -2).join('');
    const raw = Buffer.from(body, 'base64');
    expect(raw.subarray(0, 15).toString('latin1')).toBe('openssh-key-v1\0');
    expect(raw.includes(Buffer.from('\0\0\0\x04none'))).toBe(true);
  });

  it('returns a normalised ed25519 public key with the comment', () => {
    const { publicKey } = generateEd25519KeyPair('alice@cloud-cli-proxy');
    expect(publicKey).toMatch(/^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]{43} alice@cloud-cli-proxy$/);
    const parsed = parsePublicKey(publicKey);
    expect(parsed.keyType).toBe('ed25519');
    expect(parsed.comment).toBe('alice@cloud-cli-proxy');
    expect(parsed.normalized).toBe(publicKey);
  });

  it('produces a pair ssh-keygen agrees with (public half and fingerprint)', () => {
    const { privateKey, publicKey } = generateEd25519KeyPair('bob@cloud-cli-proxy');
    const privFile = writePrivate('bob', privateKey);

    // `ssh-keygen -y` derives the public key from the private one.
    const derived = keygen(['-y', '-f', privFile]).trim();
    const [alg, b64] = derived.split(' ');
    expect(`${alg} ${b64}`).toBe(publicKey.split(' ').slice(0, 2).join(' '));

    // Fingerprint of the private key file (ssh-keygen reads the embedded public half and comment).
    const fromPrivate = keygen(['-l', '-E', 'sha256', '-f', privFile]).trim().split(' ');
    expect(fromPrivate[1]).toBe(fingerprintOf(publicKey));
    expect(fromPrivate[2]).toBe('bob@cloud-cli-proxy');

    // …and of the public key as we would store it.
    const pubFile = join(dir, 'bob.pub');
    writeFileSync(pubFile, `${publicKey}\n`);
    const fromPublic = keygen(['-l', '-E', 'sha256', '-f', pubFile]).trim().split(' ');
    expect(fromPublic[0]).toBe('256');
    expect(fromPublic[1]).toBe(parsePublicKey(publicKey).fingerprint);
  });

  it('generates a fresh key every time', () => {
    const a = generateEd25519KeyPair('x@cloud-cli-proxy');
    const b = generateEd25519KeyPair('x@cloud-cli-proxy');
    expect(a.publicKey).not.toBe(b.publicKey);
    expect(a.privateKey).not.toBe(b.privateKey);
  });

  it('omits the comment when it is empty', () => {
    const { publicKey } = generateEd25519KeyPair('');
    expect(publicKey.split(' ')).toHaveLength(2);
    expect(parsePublicKey(publicKey).comment).toBeNull();
  });

  it('refuses comments that could break the public key line', () => {
    expect(() => generateEd25519KeyPair('a\nssh-ed25519 AAAA')).toThrow(RangeError);
    expect(() => generateEd25519KeyPair('x'.repeat(256))).toThrow(RangeError);
  });
});

describe('fingerprintOf', () => {
  it('matches ssh-keygen and rejects invalid input', () => {
    const { publicKey } = generateEd25519KeyPair('c@cloud-cli-proxy');
    const file = join(dir, 'c.pub');
    writeFileSync(file, `${publicKey}\n`);
    expect(fingerprintOf(publicKey)).toBe(keygen(['-l', '-f', file]).split(' ')[1]);
    expect(() => fingerprintOf('ssh-dss AAAA')).toThrow(PublicKeyError);
  });
});

describe("generateEd25519KeyPair over many keys", () => {
  it("always yields keys OpenSSH and ssh2 accept (incl. public keys with leading zero bytes)", async () => {
    const ssh2 = (await import("ssh2")).default;
    for (let i = 0; i < 600; i++) {
      const pair = generateEd25519KeyPair(`k${i}@test`);
      const parsed = ssh2.utils.parseKey(pair.privateKey);
      if (parsed instanceof Error) throw parsed;
      const key = Array.isArray(parsed) ? parsed[0]! : parsed;
      expect(key.getPublicSSH().toString("base64")).toBe(pair.publicKey.split(" ")[1]);
      const sig = key.sign(Buffer.from("data"));
      expect(key.verify(Buffer.from("data"), sig)).toBe(true);
    }
  });
});
