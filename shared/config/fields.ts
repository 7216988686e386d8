import { z } from "zod";
import { isIP } from "node:net";

/** Reusable zod field parsers for environment variables (all inputs are strings). */

/**
 * `.env.example` ships every secret as a "change-me" value (issue 10 §5): a process given one of
 * them refuses to start, naming the variable, rather than running with a key everyone can read.
 */
export const PLACEHOLDER_MESSAGE = 'still holds the "change-me" placeholder of .env.example: set a real secret';
export const isNotPlaceholder = (v: string) => !/change[-_]?me/i.test(v);

export const intVar = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .regex(/^\d+$/, "must be a non-negative integer")
    .transform(Number)
    .pipe(z.number().int().min(min).max(max))
    .default(def);

export const boolVar = (def: boolean) =>
  z
    .enum(["true", "false", "1", "0", "yes", "no"], { message: "must be true or false" })
    .transform((v) => v === "true" || v === "1" || v === "yes")
    .default(def);

export interface ListenAddr {
  host: string | undefined;
  port: number;
}

/** `:8080`, `127.0.0.1:8080`, `[::1]:8080`. An empty host listens on every address. */
export const listenAddrVar = (def: string) =>
  z
    .string()
    .default(def)
    .transform((v, ctx): ListenAddr => {
      const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(v);
      const port = m ? Number(m[3]) : NaN;
      if (!m || port < 0 || port > 65535) {
        ctx.addIssue({ code: "custom", message: "must look like :PORT or HOST:PORT" });
        return z.NEVER;
      }
      const host = m[1] ?? m[2];
      return { host: host === "" ? undefined : host, port };
    });

export const optionalListenAddrVar = () =>
  z
    .string()
    .optional()
    .transform((v, ctx): ListenAddr | undefined => {
      if (v === undefined) return undefined;
      const parsed = listenAddrVar(v).safeParse(v);
      if (!parsed.success) {
        ctx.addIssue({ code: "custom", message: "must look like :PORT or HOST:PORT" });
        return z.NEVER;
      }
      return parsed.data;
    });

export const ipv4Var = () => z.string().refine((v) => isIP(v) === 4, "must be an IPv4 address");

export const urlVar = () =>
  z.string().refine((v) => {
    try {
      const u = new URL(v);
      return u.protocol === "http:" || u.protocol === "https:";
    } catch {
      return false;
    }
  }, "must be an http(s) URL");

/** Comma-separated CIDRs (IPv4 or IPv6); `10.0.0.1` alone means a /32. */
export const cidrListVar = () =>
  z
    .string()
    .default("")
    .transform((v, ctx) => {
      const out: { address: string; prefix: number; family: 4 | 6 }[] = [];
      for (const raw of v.split(",").map((s) => s.trim()).filter(Boolean)) {
        const [addr, prefixText] = raw.split("/");
        const family = isIP(addr ?? "");
        const max = family === 4 ? 32 : 128;
        const prefix = prefixText === undefined ? max : Number(prefixText);
        if (!family || !Number.isInteger(prefix) || prefix < 0 || prefix > max) {
          ctx.addIssue({ code: "custom", message: `"${raw}" is not a CIDR` });
          return z.NEVER;
        }
        out.push({ address: addr!, prefix, family: family as 4 | 6 });
      }
      return out;
    });
