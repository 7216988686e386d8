import { isIP } from "node:net";

/**
 * Strict normaliser for `ssh -L` destinations. The host's sshd hands the destination text to
 * getaddrinfo, which accepts every inet_aton form (2130706433, 0x7f000001, 127.1, 0177.0.0.1)
 * and IPv4-mapped IPv6 — so a text comparison against the blocklist is bypassable. We turn the
 * text into an address here, check that, and make the host dial the same numeric address.
 * Returns the canonical address (IPv4 dotted quad; every IPv6 form that carries an IPv4 address
 * unwrapped to it, see unwrapEmbedded), or null if the text is not an IP literal in any form (then
 * it is a name, resolved by the caller).
 */
export function parseAddressLiteral(text: string): string | null {
  let t = text.trim();
  if (t.startsWith("[") && t.endsWith("]")) t = t.slice(1, -1);
  const zone = t.indexOf("%");
  if (zone >= 0 && t.includes(":")) t = t.slice(0, zone);
  if (t.includes(":")) return isIP(t) === 6 ? unwrapEmbedded(t) : null;
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

/**
 * IPv6 forms that lead to an IPv4 address, unwrapped to that address so the blocklist sees it
 * (and the host dials it): IPv4-mapped `::ffff:a.b.c.d` (any spelling), IPv4-compatible
 * `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d` (RFC 6052 well-known /96), 6to4 `2002:AABB:CCDD::…`
 * (RFC 3056) and Teredo `2001:0:…` (RFC 4380, the client address XOR 0xffffffff). Other IPv6 →
 * lower-case text. The host's namespace has no IPv6 route today, but a translator on the path
 * (NAT64, a 6to4 relay) would turn these into IPv4 packets to the embedded address.
 */
function unwrapEmbedded(v6: string): string {
  const w = expandV6(v6);
  if (!w) return v6.toLowerCase();
  const v4 = (hi: number, lo: number) => [hi >> 8, hi & 255, lo >> 8, lo & 255].join(".");
  const zeros = (from: number, to: number) => w.slice(from, to).every((x) => x === 0);
  if (zeros(0, 5) && w[5] === 0xffff) return v4(w[6]!, w[7]!); // mapped
  if (zeros(0, 6) && (w[6] !== 0 || w[7]! > 1)) return v4(w[6]!, w[7]!); // compatible (not :: or ::1)
  if (w[0] === 0x64 && w[1] === 0xff9b && zeros(2, 6)) return v4(w[6]!, w[7]!); // NAT64
  if (w[0] === 0x2002) return v4(w[1]!, w[2]!); // 6to4
  if (w[0] === 0x2001 && w[1] === 0) return v4(w[6]! ^ 0xffff, w[7]! ^ 0xffff); // Teredo client
  return v6.toLowerCase();
}

/**
 * The bind address of an `ssh -R` request, canonical, or null when it is not one we let the host
 * listen on: the loopback (returned as `localhost` or its canonical literal) or the wildcard
 * (returned as ""; empty, `*`, 0.0.0.0 and :: in any spelling). A name is refused:
 * the host's sshd would resolve it with the tenant's DNS, and nothing but these two is useful
 * inside a host's namespace.
 */
export function normaliseBindAddress(text: string): string | null {
  const t = text.trim().toLowerCase();
  if (t === "" || t === "*") return "";
  if (t === "localhost") return "localhost";
  const literal = parseAddressLiteral(t);
  if (literal === "0.0.0.0" || literal === "::") return "";
  if (literal === "::1" || (literal !== null && /^127\.\d+\.\d+\.\d+$/.test(literal))) return literal;
  return null;
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
