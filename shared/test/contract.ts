import type { z } from "zod";
import { type RouteContract, routeContracts } from "../../api/http/route.js";
import { errorView } from "../views/index.js";

/**
 * The response contract (README "API reference and response contract"): a response of a
 * registered route must match the schema its route documents for that status — the same schema
 * /openapi.json and /docs show. Success bodies may not carry a key the schema does not name (the
 * reference cannot silently fall behind the renderers); an error status a route does not list
 * must still be the documented error envelope.
 */
export interface ContractResponse {
  method: string;
  /** The request path, with or without a query string. */
  path: string;
  status: number;
  contentType: string | null;
  body: unknown;
}

/** The registered route serving a concrete path: the most literal template wins (`/hosts/outdated` over `/hosts/{hostID}`). */
export function findRoute(contracts: RouteContract[], method: string, pathname: string): RouteContract | undefined {
  const m = method.toUpperCase() === "HEAD" ? "GET" : method.toUpperCase();
  const literal = (p: string) => p.replace(/\{\w+\}/g, "").length;
  return contracts
    .filter((c) => c.method === m && c.re.test(pathname))
    .sort((a, b) => literal(b.path) - literal(a.path))[0];
}

/** Keys of `input` that the schema dropped from `output`, as JSON paths (`hosts[0].egress.secret`). */
export function undocumentedKeys(input: unknown, output: unknown, at = ""): string[] {
  if (Array.isArray(input) && Array.isArray(output)) return input.flatMap((v, i) => undocumentedKeys(v, output[i], `${at}[${i}]`));
  if (input && typeof input === "object" && output && typeof output === "object" && !Array.isArray(input)) {
    const out = output as Record<string, unknown>;
    return Object.entries(input as Record<string, unknown>).flatMap(([k, v]) =>
      Object.hasOwn(out, k) ? undocumentedKeys(v, out[k], at ? `${at}.${k}` : k) : [at ? `${at}.${k}` : k],
    );
  }
  return [];
}

/** null when the response honours its route's documentation; otherwise what is wrong. */
export function contractViolation(app: object, r: ContractResponse): string | null {
  const pathname = new URL(r.path, "http://contract.invalid").pathname;
  const route = findRoute(routeContracts(app), r.method, pathname);
  if (!route || r.method.toUpperCase() === "HEAD") return null; // not a defineRoute route: the UI, /openapi.json, /docs, VNC, unmatched paths
  const where = `${r.method.toUpperCase()} ${route.path} → ${r.status}`;
  const doc = route.responses[r.status];
  const isJson = /^application\/json\b/i.test(r.contentType ?? "");
  if (!doc) {
    if (r.status < 400) return `${where}: status not documented`;
    if (!isJson) return `${where}: error response is not JSON`;
    return check(where, errorView, r.body, false);
  }
  if ("none" in doc) return null;
  if ("contentType" in doc) {
    const documentedType = doc.contentType.split(";")[0]!.trim().toLowerCase();
    const actual = (r.contentType ?? "").split(";")[0]!.trim().toLowerCase();
    return documentedType === actual ? null : `${where}: content type ${actual || "(none)"}, documented ${documentedType}`;
  }
  if (!isJson) return `${where}: content type ${r.contentType ?? "(none)"}, documented application/json`;
  return check(where, doc.json, r.body, r.status < 400);
}

function check(where: string, schema: z.ZodType, body: unknown, closed: boolean): string | null {
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "(body)"}: ${i.message}`).join("; ");
    return `${where}: body does not match its documented schema: ${issues}`;
  }
  if (closed) {
    const extra = undocumentedKeys(body, parsed.data);
    if (extra.length) return `${where}: undocumented keys ${extra.join(", ")}`;
  }
  return null;
}
