import { createPrivateKey, X509Certificate } from "node:crypto";
import { z } from "zod";
import type { FieldIssue } from "../../errors.js";
import { engineLabels } from "../hosts/schemas.js";

/**
 * Engine validation (docs/api.md#engines). The shapes are zod schemas; the TLS material is checked
 * apart (checkTls) so that a bad certificate or a key that does not belong to it is reported on its
 * own field — and never echoed: messages name the field, not its content.
 */

/** The engines table's check constraint (shared/db/schema/engines.ts). */
export const ENGINE_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const isEngineId = (v: string): boolean => ENGINE_ID_PATTERN.test(v);

/** The engine a single-machine install has always had: never removed (docs/api.md#engines). */
export const PROTECTED_ENGINE_ID = "default";

const MAX_PEM = 64 * 1024;
const pemField = z.string().min(1).max(MAX_PEM);

/** `unix:///absolute/path` or `tcp://host:port` (docs/api.md#engines). */
export function endpointIssue(v: string): string | null {
  if (v.startsWith("unix://")) {
    const path = v.slice("unix://".length);
    if (!/^\/[^\s\u0000]+$/.test(path) || path.split("/").includes("..")) return "unix:// needs an absolute socket path (unix:///var/run/docker.sock)";
    return null;
  }
  if (v.startsWith("tcp://")) {
    const m = /^tcp:\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?):(\d{1,5})$/.exec(v);
    const port = m ? Number(m[3]) : 0;
    if (!m || port < 1 || port > 65535) return "tcp:// needs a host and a port (tcp://10.0.0.5:2376)";
    return null;
  }
  return "must be unix:///path or tcp://host:port";
}

export const endpointField = z
  .string()
  .max(300)
  .superRefine((v, ctx) => {
    const issue = endpointIssue(v);
    if (issue) ctx.addIssue({ code: "custom", message: issue });
  });

export const engineTlsInput = z.strictObject({
  /** The CA that signed the engine's server certificate. */
  ca_pem: pemField,
  /** The client certificate the workers present. */
  cert_pem: pemField,
  /** Its private key: stored encrypted, never returned. */
  key_pem: pemField,
});
export type EngineTlsInput = z.output<typeof engineTlsInput>;

/** null = not limited on that axis. cpus is numeric(7,2): hundredths, so a value never rounds to 0. */
const capacityShape = {
  memory_mb: z.number().int().min(1).max(2_147_483_647).nullable().optional(),
  cpus: z
    .number()
    .min(0.01)
    .max(99999.99)
    .refine((v) => Math.abs(Math.round(v * 100) - v * 100) < 1e-6, { message: "at most two decimals" })
    .nullable()
    .optional(),
  max_hosts: z.number().int().min(0).max(1_000_000).nullable().optional(),
};

export const addEngineInput = z.strictObject({
  id: z.string().regex(ENGINE_ID_PATTERN, "lowercase letters, digits, _ and - (at most 63, starting with a letter or digit)"),
  endpoint: endpointField,
  tls: engineTlsInput.optional(),
  ...capacityShape,
  labels: engineLabels.optional(),
});
export type AddEngineInput = z.output<typeof addEngineInput>;

/** Only fields present change; `tls` comes with a tcp endpoint (the current one or a new one). */
export const updateEngineInput = z.strictObject({
  endpoint: endpointField.optional(),
  tls: engineTlsInput.optional(),
  ...capacityShape,
  /** Replaces the whole label set. */
  labels: engineLabels.optional(),
});
export type UpdateEngineInput = z.output<typeof updateEngineInput>;

export const listEnginesQuery = z.object({
  state: z.enum(["active", "cordoned", "draining"]).optional(),
});
export type ListEnginesQuery = z.output<typeof listEnginesQuery>;

/** What a tcp endpoint stores: the PEMs as given (normalised line ends) and the parsed key. */
export interface CheckedTls {
  caPem: string;
  certPem: string;
  keyPem: string;
}

function parseCert(pem: string): X509Certificate | null {
  if (!/-----BEGIN CERTIFICATE-----/.test(pem)) return null;
  try {
    return new X509Certificate(pem);
  } catch {
    return null;
  }
}

/**
 * Endpoint and TLS together: tcp needs all three PEMs, each parseable, the key matching the client
 * certificate's public key; unix takes none. Issues carry the field only (no PEM content).
 */
export function checkTls(endpoint: string, tls: EngineTlsInput | undefined, prefix = "tls"): { issues: FieldIssue[]; tls: CheckedTls | null } {
  const issues: FieldIssue[] = [];
  if (endpoint.startsWith("unix://")) {
    if (tls) issues.push({ field: prefix, message: "only a tcp:// endpoint takes TLS material" });
    return { issues, tls: null };
  }
  if (!tls) {
    issues.push({ field: prefix, message: "a tcp:// endpoint needs {ca_pem, cert_pem, key_pem} (mutual TLS)" });
    return { issues, tls: null };
  }
  const ca = parseCert(tls.ca_pem);
  if (!ca) issues.push({ field: `${prefix}.ca_pem`, message: "not a PEM certificate" });
  const cert = parseCert(tls.cert_pem);
  if (!cert) issues.push({ field: `${prefix}.cert_pem`, message: "not a PEM certificate" });
  let key: ReturnType<typeof createPrivateKey> | null = null;
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(tls.key_pem)) {
    try {
      key = createPrivateKey({ key: tls.key_pem, format: "pem" });
    } catch {
      // Encrypted keys land here too: the workers have no passphrase to open them with.
      key = null;
    }
  }
  if (!key) issues.push({ field: `${prefix}.key_pem`, message: "not a PEM private key (an unencrypted PKCS#8, PKCS#1 or SEC1 key)" });
  else if (cert) {
    let matches = false;
    try {
      matches = cert.checkPrivateKey(key);
    } catch {
      matches = false;
    }
    if (!matches) issues.push({ field: `${prefix}.key_pem`, message: "does not match the public key of cert_pem" });
  }
  if (issues.length) return { issues, tls: null };
  const norm = (s: string) => `${s.replace(/\r\n/g, "\n").trim()}\n`;
  return { issues, tls: { caPem: norm(tls.ca_pem), certPem: norm(tls.cert_pem), keyPem: norm(tls.key_pem) } };
}
