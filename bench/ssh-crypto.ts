/**
 * The SSH proxy's crypto floor (issue 12): CPU seconds per GiB that ssh2 1.17's own packet
 * ciphers need, alone in this process, with no sockets, streams or relay around them — what the
 * proxy cannot get below however its byte path is written. Each relayed byte is decrypted once
 * (on the leg it arrives on) and encrypted once (on the other leg), so the floor per direction is
 * decrypt(one leg's cipher) + encrypt(the other's). The packets are built as ssh2 builds
 * CHANNEL_DATA (32 KiB payload, its PACKET_SIZE, fixed in ssh2: allocPacket — a fresh buffer and
 * random padding per packet — one copy of the data in, encrypt in place) and read back as it
 * reads them (the stream fed in 64 KiB socket-sized reads, each packet decrypted in place).
 *
 *   npx tsx bench/ssh-crypto.ts [--mib 1024]
 *
 * Compare with the proxy process's CPU-s/GiB that bench/ssh-throughput.ts prints: the difference
 * is what the relay (streams, events, socket writes) costs on top of the crypto.
 */
import { createRequire } from "node:module";
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { mib: { type: "string", default: "1024" } } });
const BYTES = Number(values.mib) * 1024 * 1024;
const PACKET = 32 * 1024; // ssh2's PACKET_SIZE (lib/Channel.js)
const READ = 64 * 1024; // a socket read on Linux loopback

// ssh2's packet ciphers are internal; the bench reaches them by file, as pinned (1.17.0).
const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const crypto: any = require("ssh2/lib/protocol/crypto.js");

interface Result {
  encrypt: number;
  decrypt: number;
  native: boolean;
}

function measure(name: string): Result {
  const info = crypto.CIPHER_INFO[name];
  const key = randomBytes(info.keyLen);
  const iv = info.ivLen ? randomBytes(info.ivLen) : undefined;
  // The whole encrypted stream is kept and decrypted afterwards, so the two sides are timed
  // apart; `--mib` bounds the memory. ssh2 hands each packet to the socket; here it is kept.
  const packetsOut: Buffer[] = [];
  const cipher = crypto.createCipher({
    outbound: {
      onWrite: (b: Buffer) => void packetsOut.push(b),
      cipherInfo: info,
      cipherKey: key,
      cipherIV: iv ? Buffer.from(iv) : undefined,
      seqno: 0,
    },
  });
  const payload = randomBytes(PACKET);
  const header = 1 + 4 + 4; // CHANNEL_DATA, recipient, length
  const packets = Math.ceil(BYTES / PACKET);
  const e0 = process.cpuUsage();
  for (let i = 0; i < packets; i++) {
    const packet: Buffer = cipher.allocPacket(header + PACKET);
    packet[5] = 94;
    packet.writeUInt32BE(0, 6);
    packet.writeUInt32BE(PACKET, 10);
    packet.set(payload, 5 + header);
    cipher.encrypt(packet);
  }
  const e = process.cpuUsage(e0);
  // Re-cut into READ-sized pieces, as a socket delivers them (untimed).
  const all = Buffer.concat(packetsOut);
  packetsOut.length = 0;
  const out: Buffer[] = [];
  for (let o = 0; o < all.length; o += READ) out.push(all.subarray(o, Math.min(all.length, o + READ)));

  let got = 0;
  const decipher = crypto.createDecipher({
    inbound: {
      onPayload: (p: Buffer) => {
        got += p.length - header;
      },
      decipherInfo: info,
      decipherKey: key,
      decipherIV: iv ? Buffer.from(iv) : undefined,
      seqno: 0,
    },
  });
  const d0 = process.cpuUsage();
  for (const chunk of out) decipher.decrypt(chunk, 0, chunk.length);
  const d = process.cpuUsage(d0);
  if (got !== packets * PACKET) throw new Error(`${name}: ${got} bytes decrypted, expected ${packets * PACKET}`);
  const perGiB = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1e6 / (BYTES / 1024 ** 3);
  return { encrypt: perGiB(e), decrypt: perGiB(d), native: crypto.bindingAvailable };
}

const chacha = "chacha20-poly1305@openssh.com";
const gcm = "aes128-gcm@openssh.com";
console.log(`ssh2 packet crypto alone, ${values.mib} MiB of 32 KiB CHANNEL_DATA packets (CPU-s per GiB; ssh2 native binding: ${crypto.bindingAvailable})`);
const r: Record<string, Result> = {};
for (const name of [chacha, gcm]) {
  measure(name); // warm-up
  r[name] = measure(name);
  console.log(`  ${name.padEnd(30)} encrypt ${r[name]!.encrypt.toFixed(2)}  decrypt ${r[name]!.decrypt.toFixed(2)}`);
}
// The proxy's legs: the client picks the client leg's cipher (OpenSSH: chacha20 first), the
// proxy picks the host leg's (ssh2's default list: AES-GCM first on AES-NI machines).
const down = r[gcm]!.decrypt + r[chacha]!.encrypt;
const up = r[chacha]!.decrypt + r[gcm]!.encrypt;
console.log(`floor for the proxy (client leg ${chacha}, host leg ${gcm}):`);
console.log(`  host → client: ${down.toFixed(2)} CPU-s/GiB (decrypt ${gcm} + encrypt ${chacha})`);
console.log(`  client → host: ${up.toFixed(2)} CPU-s/GiB (decrypt ${chacha} + encrypt ${gcm})`);
