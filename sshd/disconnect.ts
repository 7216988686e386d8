import { createRequire } from "node:module";
import type ssh2 from "ssh2";

const require = createRequire(import.meta.url);
// ssh2's public `end()` sends SSH_MSG_DISCONNECT with an empty description; users must see *why*
// they were refused ("account disabled", "too many failed attempts…"), so we write the packet
// ourselves through the protocol object (ssh2 1.17.x internals, pinned in package.json).
const { sendPacket } = require("ssh2/lib/protocol/utils.js") as {
  sendPacket: (proto: unknown, packet: Buffer, bypass?: boolean) => void;
};

const SSH_MSG_DISCONNECT = 1;
export const DISCONNECT_BY_APPLICATION = 11;
export const DISCONNECT_NO_MORE_AUTH_METHODS = 14;

interface ProtoInternals {
  _packetRW: {
    write: {
      allocStartKEX: number;
      alloc: (len: number, force?: boolean) => Buffer;
      finalize: (packet: Buffer, force?: boolean) => Buffer;
    };
  };
}

/** Disconnect with a human-readable description the OpenSSH client prints. */
export function disconnectWithMessage(
  client: ssh2.Connection,
  message: string,
  reason: number = DISCONNECT_BY_APPLICATION,
): void {
  const internals = client as unknown as {
    _protocol?: ProtoInternals;
    _sock?: { end: () => void; destroy: () => void; once: (e: "close", f: () => void) => unknown; writable?: boolean };
  };
  const proto = internals._protocol;
  try {
    if (proto && internals._sock?.writable !== false) {
      const desc = Buffer.from(message, "utf8");
      const len = 1 + 4 + 4 + desc.length + 4;
      let p = proto._packetRW.write.allocStartKEX;
      const packet = proto._packetRW.write.alloc(len, true);
      packet[p++] = SSH_MSG_DISCONNECT;
      packet.writeUInt32BE(reason, p);
      p += 4;
      packet.writeUInt32BE(desc.length, p);
      p += 4;
      desc.copy(packet, p);
      p += desc.length;
      packet.writeUInt32BE(0, p); // empty language tag
      sendPacket(proto, proto._packetRW.write.finalize(packet, true), true);
    }
  } catch {
    // Fall through to a plain close: refusing matters more than the message.
  }
  const sock = internals._sock;
  if (!sock) return;
  sock.end();
  // end() only half-closes. Bug fixed (found by test/docker/ssh-proxy.test.ts, login grace with a
  // client that never closes its side): the proxy kept such a socket, and its fd, in FIN-WAIT-2 for
  // as long as the peer wanted, so refused or timed-out connections could pile up. The peer has
  // had the DISCONNECT (sent before the FIN); after a short grace the socket is destroyed.
  const timer = setTimeout(() => sock.destroy(), DESTROY_AFTER_MS);
  timer.unref();
  sock.once("close", () => clearTimeout(timer));
}

/** How long a disconnected peer gets to close its side before the socket is destroyed. */
export const DESTROY_AFTER_MS = 2000;
