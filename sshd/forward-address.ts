import { isIP } from "node:net";

/**
 * Strict normaliser for `ssh -L` destinations. The host's sshd hands the destination text to
 * getaddrinfo, which accepts every inet_aton form (2130706433, 0x7f000001, 127.1, 0177.0.0.1)
 * and IPv4-mapped IPv6 — so a text comparison against the blocklist is bypassable. We turn the
 * text into an address here, check that, and make the host dial the same numeric address.
 * Returns the canonical address (IPv4 dotted quad; IPv4-mapped IPv6 unwrapped to IPv4), or null
 * if the text is not an IP literal in any form (then it is a name, resolved by the caller).
 */
export function parseAddressLiteral(text: string): string | null {
  let t = text.trim();
  if (t.startsWith("[") && t.endsWith("]")) t = t.slice(1, -1);
  const zone = t.indexOf("%");
  if (zone >= 0 && t.includes(":")) t = t.slice(0, zone);
  if (t.includes(":")) return isIP(t) === 6 ? unwrapMapped(t) : null;
  return parseInetAton(t);
}

/** inet_aton: 1–4 parts, each decimal, 0x-hex or 0-octal; the last part fills the remaining bytes. */
function parseInetAton(t: string): string | null {
  const parts = t.split(".");
  if (parts.length < 1 || parts.length > 4) return null;
  const nums: number[] = [];
  for (const p of parts) {
    let n: number;
    if (/^0x[0-9a-f]*$/i.test(p)) n = p.length === 2 ? 0 : parseInt(p.slice(2), 16);
    else if (/^0[0-7]*$/.test(p)) n = parseInt(p, 8);
    else if (/^[1-9][0-9]*$/.test(p)) n = Number(p);
    else return null;
    if (!Number.isSafeInteger(n)) return null;
    nums.push(n);
  }
  const last = nums.pop()!;
  if (nums.some((n) => n > 255)) return null;
  const lastBytes = 4 - nums.length;
  if (last >= 2 ** (8 * lastBytes)) return null;
  const bytes = [...nums];
  for (let i = lastBytes - 1; i >= 0; i--) bytes.push(Math.floor(last / 2 ** (8 * i)) % 256);
  return bytes.join(".");
}

/** ::ffff:a.b.c.d and ::ffff:xxxx:yyyy (any spelling) → a.b.c.d; other IPv6 → lower-case text. */
function unwrapMapped(v6: string): string {
  const words = expandV6(v6);
  if (words && words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return [words[6]! >> 8, words[6]! & 255, words[7]! >> 8, words[7]! & 255].join(".");
  }
  return v6.toLowerCase();
}

function expandV6(v6: string): number[] | null {
  let s = v6.toLowerCase();
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (dotted) {
    const b = dotted[1]!.split(".").map(Number);
    s = s.slice(0, -dotted[1]!.length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = s.includes("::") ? s.split("::") : [s, undefined];
  const h = head ? head.split(":") : [];
  const tl = tail !== undefined && tail !== "" ? tail.split(":") : [];
  const fill = tail !== undefined ? 8 - h.length - tl.length : 0;
  const all = [...h, ...Array(fill).fill("0"), ...tl];
  if (all.length !== 8) return null;
  return all.map((w) => parseInt(w, 16));
}
