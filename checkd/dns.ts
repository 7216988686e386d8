import * as dnsPacket from "dns-packet";
import type { Answer, DecodedPacket, Question } from "dns-packet";

/**
 * The canary's DNS answers (README "Deploying the egress check service (checkd)"). Authoritative
 * for one zone only, never recursive:
 * - `<anything>.<zone>`: A = the configured IPv4 (AAAA = the IPv6 when configured, else an empty
 *   answer), recorded with the query's source address;
 * - the apex: SOA and NS (and A/AAAA like any name), recorded too;
 * - any name outside the zone: REFUSED, not recorded (it never forwards).
 * Packets are parsed by dns-packet, never by hand. What cannot be parsed, is itself a response, or
 * asks more or less than one question gets no answer or a bare error code: nothing it says is
 * echoed beyond the question, so an answer is never much larger than the query (no amplification).
 */

export interface ZoneOptions {
  zone: string;
  answerIpv4: string;
  answerIpv6?: string | undefined;
  nsName: string;
  /** Called for every query of a name in the zone: lowercased, without trailing dot. */
  record: (name: string, source: string) => void;
}

const TTL = 0; // every check uses a fresh name; nothing is worth caching
const RCODE = { NOERROR: 0, FORMERR: 1, NOTIMP: 4, REFUSED: 5 } as const;
const AA = dnsPacket.AUTHORITATIVE_ANSWER;
const RD = dnsPacket.RECURSION_DESIRED;
const QR_BIT = 0x8000;

/** Only the header of what could not be parsed: id and RD for a FORMERR, if 12 bytes are there. */
function bareError(query: Buffer, rcode: number): Buffer | null {
  if (query.length < 12) return null;
  const flags = query.readUInt16BE(2);
  if (flags & QR_BIT) return null; // a response: never answer it (no reflection loops)
  const out = Buffer.alloc(12);
  out.writeUInt16BE(query.readUInt16BE(0), 0);
  out.writeUInt16BE(QR_BIT | (flags & 0x7800) | (flags & RD) | rcode, 2);
  return out;
}

function inZone(name: string, zone: string): boolean {
  return name === zone || name.endsWith(`.${zone}`);
}

/** The answer to one DNS message, or null when none is due. Never throws. */
export function answerQuery(query: Buffer, source: string, z: ZoneOptions): Buffer | null {
  // dns-packet decodes opcode and rcode too; its type declarations only omit them.
  let packet: DecodedPacket & { opcode?: string; rcode?: string };
  try {
    packet = dnsPacket.decode(query);
  } catch {
    return bareError(query, RCODE.FORMERR);
  }
  if (packet.type !== "query") return null;
  const flags = packet.flags ?? 0;
  const rd = flags & RD;
  const reply = (rcode: number, questions: Question[], body: Partial<Pick<DecodedPacket, "answers" | "authorities">> = {}): Buffer | null => {
    try {
      return dnsPacket.encode({
        type: "response",
        id: packet.id ?? 0,
        flags: AA | rd | rcode,
        questions,
        answers: body.answers ?? [],
        authorities: body.authorities ?? [],
      });
    } catch {
      return bareError(query, RCODE.FORMERR);
    }
  };
  if (packet.opcode !== "QUERY") return bareError(query, RCODE.NOTIMP);
  const questions = packet.questions ?? [];
  if (questions.length !== 1) return bareError(query, RCODE.FORMERR);
  const q = questions[0]!;
  const name = String(q.name).toLowerCase().replace(/\.$/, "");
  const klass = q.class ?? "IN";
  if (!inZone(name, z.zone) || (klass !== "IN" && klass !== "ANY")) return reply(RCODE.REFUSED, [q]);
  z.record(name, source);

  const soa: Answer = {
    type: "SOA",
    name: z.zone,
    ttl: TTL,
    data: {
      mname: z.nsName,
      rname: `hostmaster.${z.zone}`,
      serial: 1,
      refresh: 3600,
      retry: 600,
      expire: 86400,
      minimum: TTL,
    },
  };
  const a: Answer = { type: "A", name: q.name, ttl: TTL, data: z.answerIpv4 };
  const aaaa: Answer | null = z.answerIpv6 ? { type: "AAAA", name: q.name, ttl: TTL, data: z.answerIpv6 } : null;
  const ns: Answer = { type: "NS", name: z.zone, ttl: TTL, data: z.nsName };
  const apex = name === z.zone;
  const answers: Answer[] = [];
  switch (q.type as string) {
    case "A":
      answers.push(a);
      break;
    case "AAAA":
      if (aaaa) answers.push(aaaa);
      break;
    case "ANY":
      answers.push(a);
      if (aaaa) answers.push(aaaa);
      if (apex) answers.push(soa, ns);
      break;
    case "SOA":
      if (apex) answers.push(soa);
      break;
    case "NS":
      if (apex) answers.push(ns);
      break;
    default:
      break;
  }
  // An empty answer (NODATA) carries the SOA in the authority section, as resolvers expect.
  return reply(RCODE.NOERROR, [q], answers.length ? { answers } : { authorities: [soa] });
}

/**
 * TCP framing (RFC 1035 docs/api.md#hosts-lifecycle): each message is preceded by its length in two bytes. Feeds
 * arbitrary chunks, returns the whole messages they complete; the buffer never holds more than one
 * message (at most 65 537 bytes).
 */
export class TcpFramer {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Buffer[] = [];
    while (this.buf.length >= 2) {
      const len = this.buf.readUInt16BE(0);
      if (this.buf.length < 2 + len) break;
      out.push(this.buf.subarray(2, 2 + len));
      this.buf = this.buf.subarray(2 + len);
    }
    return out;
  }
}

export function frame(message: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(message.length, 0);
  return Buffer.concat([len, message]);
}
