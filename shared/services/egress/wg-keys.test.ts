import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { WG_KEY_PATTERN, generateWgKeyPair, isWgKey, wgPublicKeyFromPrivate } from "./wg-keys.js";

/** The `wg` reference tool, when this machine has it (wireguard-tools). */
function wgTool(): ((args: string[], input?: string) => string) | null {
  try {
    execFileSync("wg", ["--version"], { stdio: "ignore" });
  } catch {
    return null;
  }
  return (args, input) => execFileSync("wg", args, { input, encoding: "utf8" }).trim();
}
const wg = wgTool();

const hex = (h: string) => Buffer.from(h, "hex").toString("base64");

describe("WireGuard keys", () => {
  it("derives public keys of known vectors", () => {
    // RFC 7748 docs/egress.md#topology (Alice and Bob).
    expect(wgPublicKeyFromPrivate(hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))).toBe(
      hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"),
    );
    expect(wgPublicKeyFromPrivate(hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))).toBe(
      hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"),
    );
    // The example of the wg(8) manual page.
    expect(wgPublicKeyFromPrivate("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=")).toBe(
      "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",
    );
  });

  it("generates distinct, clamped 32-byte key pairs in wg's format", () => {
    const a = generateWgKeyPair();
    const b = generateWgKeyPair();
    expect(a.privateKey).not.toBe(b.privateKey);
    for (const k of [a.privateKey, a.publicKey]) {
      expect(k).toMatch(WG_KEY_PATTERN);
      expect(k).toHaveLength(44);
      expect(Buffer.from(k, "base64")).toHaveLength(32);
    }
    const raw = Buffer.from(a.privateKey, "base64");
    expect(raw[0]! & 7).toBe(0);
    expect(raw[31]! & 0xc0).toBe(0x40);
    expect(wgPublicKeyFromPrivate(a.privateKey)).toBe(a.publicKey);
  });

  it("recognises only canonical base64 of 32 bytes", () => {
    expect(isWgKey("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=")).toBe(true);
    expect(isWgKey("PeerPublicKeyBase64")).toBe(false);
    expect(isWgKey(Buffer.alloc(31).toString("base64"))).toBe(false);
    expect(isWgKey(Buffer.alloc(33).toString("base64"))).toBe(false);
    // Non-zero padding bits: decodes to the same bytes, but is not what wg prints.
    expect(isWgKey("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBml=")).toBe(false);
    expect(() => wgPublicKeyFromPrivate("not a key")).toThrow();
  });

  // Not skipped when `wg` is missing: setup installs wireguard-tools, and a test that silently
  // skips would count as passing.
  it("agrees with the wg tool both ways", () => {
    if (!wg) throw new Error("the wg tool is missing: run npm run setup (it installs wireguard-tools)");
    for (let i = 0; i < 5; i++) {
      const theirs = wg!(["genkey"]);
      expect(theirs).toMatch(WG_KEY_PATTERN);
      expect(wgPublicKeyFromPrivate(theirs)).toBe(wg!(["pubkey"], `${theirs}\n`));
      const ours = generateWgKeyPair();
      expect(wg!(["pubkey"], `${ours.privateKey}\n`)).toBe(ours.publicKey);
    }
    const psk = wg!(["genpsk"]);
    expect(isWgKey(psk)).toBe(true);
  });
});
