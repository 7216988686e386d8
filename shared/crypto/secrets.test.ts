import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createSecretBox, UnknownKeyVersionError } from "./secrets.js";

const key = (v: number) => `v${v}:${randomBytes(32).toString("base64")}`;

describe("SecretBox", () => {
  it("round-trips and never stores the plaintext", () => {
    const box = createSecretBox(key(1));
    const ct = box.encrypt("s3cret-value");
    expect(ct).toMatch(/^v1:[A-Za-z0-9+/=]+$/);
    expect(ct).not.toContain("s3cret");
    expect(box.decrypt(ct)).toBe("s3cret-value");
    // Random IVs: the same plaintext encrypts differently every time.
    expect(box.encrypt("s3cret-value")).not.toBe(ct);
  });

  it("decrypts old versions through SECRETS_KEY_PREVIOUS after rotation", () => {
    const k1 = key(1);
    const k2 = key(2);
    const old = createSecretBox(k1).encrypt("hello");
    const rotated = createSecretBox(k2, k1);
    expect(rotated.decrypt(old)).toBe("hello");
    expect(rotated.versionOf(rotated.encrypt("x"))).toBe(2);
    expect(() => createSecretBox(k2).decrypt(old)).toThrow(UnknownKeyVersionError);
  });

  it("detects tampering and wrong keys", () => {
    const box = createSecretBox(key(1));
    const ct = box.encrypt("hello");
    const raw = Buffer.from(ct.slice(3), "base64");
    raw[raw.length - 1]! ^= 1;
    expect(() => box.decrypt(`v1:${raw.toString("base64")}`)).toThrow();
    expect(() => createSecretBox(key(1)).decrypt(ct)).toThrow();
    expect(() => box.decrypt("garbage")).toThrow();
  });

  it("rejects malformed keys", () => {
    expect(() => createSecretBox("v1:short")).toThrow();
    expect(() => createSecretBox(randomBytes(32).toString("base64"))).toThrow();
  });
});
