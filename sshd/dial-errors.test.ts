import { createServer, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createSecretBox, secretAt } from "../shared/crypto/secrets.js";
import { generateEd25519KeyPair } from "../shared/ssh/keygen.js";
import { dialHost } from "./server.js";

/**
 * A host's sshd belongs to its tenant, who may make it reset connections at will. One failed dial
 * can make ssh2 emit two errors (the reset, then "Connection lost before handshake"); an unheard
 * second one was an uncaught exception that ended the whole proxy (found by bench/ssh-concurrency.ts
 * at ~600 sessions). vitest fails a run on any uncaught error, so this test fails without the fix.
 */

const ADDRESS = "127.0.0.77"; // loopback; port 22 is fixed in dialHost
let server: Server | undefined;

afterEach(async () => {
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

function resettingSshd(mode: "at-once" | "after-banner"): Promise<void> {
  server = createServer((socket: Socket) => {
    if (mode === "after-banner") socket.write("SSH-2.0-OpenSSH_9.2\r\n");
    setImmediate(() => socket.resetAndDestroy());
  });
  return new Promise((resolve, reject) => {
    server!.once("error", reject);
    server!.listen(22, ADDRESS, () => resolve());
  });
}

describe("dialing a host's sshd that resets the connection", () => {
  it.each(["at-once", "after-banner"] as const)("rejects once, and nothing is left unhandled (%s)", async (mode) => {
    await resettingSshd(mode);
    const secrets = createSecretBox(`v1:${Buffer.alloc(32, 9).toString("base64")}`);
    const id = "00000000-0000-4000-8000-000000000077";
    const internal = generateEd25519KeyPair("proxy");
    const hostKey = generateEd25519KeyPair("host");
    const deps = { config: { HOST_SSH_USER: "workspace", SSH_HOST_DIAL_TIMEOUT_SECONDS: 5 }, secrets } as unknown as Parameters<typeof dialHost>[0];
    const host = {
      id,
      managementAddress: ADDRESS,
      hostKeyPublic: hostKey.publicKey,
      internalKeyPrivateEnc: secrets.encrypt(internal.privateKey, secretAt.host(id, "internal_key_private_enc")),
    };
    await expect(dialHost(deps, { host } as unknown as Parameters<typeof dialHost>[1])).rejects.toThrow();
    // The client's later events (the second error, the close) come after the rejection.
    await new Promise((r) => setTimeout(r, 200));
  });
});
