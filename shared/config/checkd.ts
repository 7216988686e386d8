import { isIP } from "node:net";
import { z } from "zod";
import { boolVar, intVar, ipv4Var, isNotPlaceholder, listenAddrVar, PLACEHOLDER_MESSAGE } from "./fields.js";
import { parseConfig } from "./parse.js";

/** A DNS name as an operator writes it: lowercased, a trailing dot removed. */
export const dnsNameVar = () =>
  z
    .string()
    .transform((v) => v.toLowerCase().replace(/\.$/, ""))
    .refine(
      (v) => v.length <= 253 && v.split(".").every((l) => /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/.test(l)),
      "must be a DNS name (labels of a-z 0-9 - _, at most 63 characters each)",
    );

/**
 * The egress check service (`node dist/main.js checkd`, README "Deploying the egress check service
 * (checkd)"): the IP echo, the authoritative DNS server of the canary zone and the query API the
 * worker reads. It needs no database, Redis or SECRETS_KEY: it runs alone on a small public machine.
 */
export const checkdConfigSchema = z.object({
  // HTTP: /ip, /generate_204 (what the worker's EGRESS_ECHO_URL / EGRESS_CHECK_URL point at) and
  // the query API /v1/canary/<name> (EGRESS_DNS_CANARY_API).
  CHECKD_HTTP_LISTEN_ADDR: listenAddrVar(":80"),
  // DNS, UDP and TCP on the same address: the canary zone is delegated to this address.
  CHECKD_DNS_LISTEN_ADDR: listenAddrVar(":53"),
  CHECKD_ZONE: dnsNameVar(),
  // What every <label>.<zone> resolves to (A; AAAA only when CHECKD_ANSWER_IPV6 is set): this
  // machine's public address, so a lookup followed by a connection lands on the echo.
  CHECKD_ANSWER_IPV4: ipv4Var(),
  CHECKD_ANSWER_IPV6: z
    .string()
    .optional()
    .refine((v) => v === undefined || isIP(v) === 6, "must be an IPv6 address"),
  // The name server named in the zone's SOA and NS records (the parent's NS record and glue point
  // at it); default ns.<zone>, which resolves to CHECKD_ANSWER_IPV4 like every name of the zone.
  CHECKD_NS_NAME: dnsNameVar().optional(),
  // Shared with the worker (EGRESS_DNS_CANARY_API_SECRET): the query API answers only
  // `Authorization: Bearer <secret>`, so nobody else learns which addresses resolved which names.
  CHECKD_API_SECRET: z
    .string()
    .refine(isNotPlaceholder, PLACEHOLDER_MESSAGE)
    .refine((v) => Buffer.byteLength(v, "utf8") >= 32, "must be at least 32 bytes"),
  // The memory bound under a flood of unique names: at most this many names are remembered
  // (least recently queried dropped first), each with at most this many source addresses, each
  // for at most this long. A check reads its names within seconds of querying them.
  CHECKD_MAX_NAMES: intVar(50_000, 1, 5_000_000),
  CHECKD_MAX_SOURCES_PER_NAME: intVar(16, 1, 1024),
  CHECKD_RECORD_TTL_SECONDS: intVar(600, 10, 86_400),
  // TCP DNS connections open at once (each is closed after 10 s idle).
  CHECKD_MAX_TCP_CONNECTIONS: intVar(256, 1, 65_536),
  // One log line per DNS query and HTTP request, with its source address (the test lab's leak
  // sentinel reads them). Off by default: a flood would otherwise become a flood of log lines.
  CHECKD_LOG_REQUESTS: boolVar(false),
  LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
  LOG_FORMAT: z.enum(["json", "pretty"]).default("json"),
});

export type CheckdConfig = z.output<typeof checkdConfigSchema> & { CHECKD_NS_NAME: string };

export function parseCheckdConfig(source: Record<string, string | undefined>): CheckdConfig {
  const cfg = parseConfig(checkdConfigSchema, source);
  return { ...cfg, CHECKD_NS_NAME: cfg.CHECKD_NS_NAME ?? `ns.${cfg.CHECKD_ZONE}` };
}
