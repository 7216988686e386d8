import { createRequire } from "node:module";
import type ssh2 from "ssh2";

const require = createRequire(import.meta.url);
// ssh2 sends a banner only once, from its server config, when the client asks for ssh-userauth.
// A wake's progress lines (docs/idle.md#wake) are more SSH_MSG_USERAUTH_BANNERs while the client
// waits for the answer to its authentication request: RFC 4252 §5.4 allows them at any time
// before success, and OpenSSH prints each on stderr at its default LogLevel (INFO). Written
// through the protocol object like sshd/disconnect.ts (ssh2 1.17.x internals, pinned in package.json).
const { sendPacket } = require("ssh2/lib/protocol/utils.js") as {
  sendPacket: (proto: unknown, packet: Buffer, bypass?: boolean) => void;
};

const SSH_MSG_USERAUTH_BANNER = 53;

interface ProtoInternals {
  _packetRW: {
    write: {
      allocStart: number;
      alloc: (len: number, force?: boolean) => Buffer;
      finalize: (packet: Buffer, force?: boolean) => Buffer;
    };
  };
}

/** Send one banner message (a line the OpenSSH client prints on stderr during authentication). */
export function sendAuthBanner(client: ssh2.Connection, text: string): boolean {
  const internals = client as unknown as { _protocol?: ProtoInternals; _sock?: { writable?: boolean } };
  const proto = internals._protocol;
  if (!proto || internals._sock?.writable === false) return false;
  try {
    const msg = Buffer.from(text, "utf8");
    let p = proto._packetRW.write.allocStart;
    const packet = proto._packetRW.write.alloc(1 + 4 + msg.length + 4);
    packet[p++] = SSH_MSG_USERAUTH_BANNER;
    packet.writeUInt32BE(msg.length, p);
    p += 4;
    msg.copy(packet, p);
    p += msg.length;
    packet.writeUInt32BE(0, p); // empty language tag
    sendPacket(proto, proto._packetRW.write.finalize(packet));
    return true;
  } catch {
    return false; // a progress line is never worth failing the login for
  }
}
