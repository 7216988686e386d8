import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createSecretBox, encryptLegacy, secretAt, SecretUnreadableError, UnknownKeyVersionError } from "./secrets.js";

const key = (v: number) => `v${v}:${randomBytes(32).toString("base64")}`;
const hostA = secretAt.host("8d6a3c0e-7d0b-4e57-9d5c-1a2b3c4d5e6f", "ssh_password_enc");
const hostB = secretAt.host("0f1e2d3c-4b5a-4697-8877-665544332211", "ssh_password_enc");

describe("SecretBox", () => {
  it("round-trips and never stores the plaintext", () => {
    const box = createSecretBox(key(1));
    const ct = box.encrypt("s3cret-value", hostA);
    expect(ct).toMatch(/^v1a:[A-Za-z0-9+/=]+$/);
    expect(ct).not.toContain("s3cret");
    expect(box.decrypt(ct, hostA)).toBe("s3cret-value");
    expect(box.isCurrent(ct)).toBe(true);
    // Random IVs: the same plaintext encrypts differently every time.
    expect(box.encrypt("s3cret-value", hostA)).not.toBe(ct);
  });

  it("decrypts old versions through SECRETS_KEY_PREVIOUS after rotation", () => {
    const k1 = key(1);
    const k2 = key(2);
    const old = createSecretBox(k1).encrypt("hello", hostA);
    const rotated = createSecretBox(k2, k1);
    expect(rotated.decrypt(old, hostA)).toBe("hello");
    expect(rotated.isCurrent(old)).toBe(false);
    expect(rotated.versionOf(rotated.encrypt("x", hostA))).toBe(2);
    expect(() => createSecretBox(k2).decrypt(old, hostA)).toThrow(UnknownKeyVersionError);
  });

  it("detects tampering and wrong keys", () => {
    const box = createSecretBox(key(1));
    const ct = box.encrypt("hello", hostA);
    const raw = Buffer.from(ct.slice(4), "base64");
    raw[raw.length - 1]! ^= 1;
    expect(() => box.decrypt(`v1a:${raw.toString("base64")}`, hostA)).toThrow(SecretUnreadableError);
    expect(() => createSecretBox(key(1)).decrypt(ct, hostA)).toThrow(SecretUnreadableError);
    expect(() => box.decrypt("garbage", hostA)).toThrow(SecretUnreadableError);
  });

  it("binds a ciphertext to its table, column and row: copied anywhere else it does not decrypt (issue 10 §5)", () => {
    const box = createSecretBox(key(1));
    const ct = box.encrypt("host-a-password", hostA);
    // Another row of the same column: the attack of copying one host's password onto another.
    expect(() => box.decrypt(ct, hostB)).toThrow(SecretUnreadableError);
    // Another column of the same row, another table, a system key.
    expect(() => box.decrypt(ct, secretAt.host(hostA.row, "internal_key_private_enc"))).toThrow(SecretUnreadableError);
    expect(() => box.decrypt(ct, secretAt.egress(hostA.row, "wg_private_key_enc"))).toThrow(SecretUnreadableError);
    expect(() => box.decrypt(ct, secretAt.systemKey("ssh_proxy_host_key"))).toThrow(SecretUnreadableError);
    // The error names the place, not the value.
    try {
      box.decrypt(ct, hostB);
    } catch (err) {
      expect((err as Error).message).toBe(`the secret in hosts.ssh_password_enc of ${hostB.row} cannot be decrypted (authentication failed)`);
      expect((err as Error).message).not.toContain("host-a-password");
    }
    // Locations cannot be confused by joining their parts differently.
    const odd = box.encrypt("x", { table: "system_keys", column: "private_key_enc", row: "a\0b" });
    expect(() => box.decrypt(odd, { table: "system_keys", column: "private_key_enc", row: "a" })).toThrow(SecretUnreadableError);
    expect(box.decrypt(ct, hostA)).toBe("host-a-password");
  });

  it("still reads legacy unbound ciphertexts anywhere, and reports them as not current", () => {
    const k1 = key(1);
    const box = createSecretBox(k1);
    const legacy = encryptLegacy(k1, "legacy-value");
    expect(legacy).toMatch(/^v1:[A-Za-z0-9+/=]+$/);
    expect(box.versionOf(legacy)).toBe(1);
    expect(box.isCurrent(legacy)).toBe(false);
    expect(box.decrypt(legacy, hostA)).toBe("legacy-value");
    expect(box.decrypt(legacy, hostB)).toBe("legacy-value");
    // A bound ciphertext relabelled as legacy (the "a" dropped) does not pass as unbound.
    const bound = box.encrypt("bound-value", hostA);
    expect(() => box.decrypt(bound.replace(/^v1a:/, "v1:"), hostA)).toThrow(SecretUnreadableError);
  });

  it("rejects malformed keys", () => {
    expect(() => createSecretBox("v1:short")).toThrow();
    expect(() => createSecretBox(randomBytes(32).toString("base64"))).toThrow();
  });
});
