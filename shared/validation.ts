import { z } from "zod";

/** Field rules shared by request schemas (docs/api.md#validation, docs/api.md#users). */

// eslint-disable-next-line no-control-regex
export const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

export const asciiLower = (s: string) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());

export const USERNAME_PATTERN = /^[a-z0-9][a-z0-9._-]{2,49}$/;

export const usernameField = z
  .string()
  .transform(asciiLower)
  .refine((v) => USERNAME_PATTERN.test(v), {
    message: "must be 3-50 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
  });

const codePoints = (s: string) => [...s].length;

export const newPasswordField = z
  .string()
  .refine((v) => codePoints(v) >= 8 && codePoints(v) <= 128, { message: "must be 8-128 characters" })
  .refine((v) => !CONTROL_CHARS.test(v), { message: "must not contain control characters" });

/** A password being checked (login, old password): only bounded, never echoed. */
export const presentedPasswordField = z
  .string()
  .refine((v) => v.length >= 1 && v.length <= 1024, { message: "must be 1-1024 characters" });

const daysInMonth = (y: number, m: number) => new Date(Date.UTC(y, m, 0)).getUTCDate();

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** RFC 3339 date-time with `Z` or an offset; a date alone or a time without offset is rejected. */
export const timestampField = z.string().transform((v, ctx) => {
  const m = RFC3339.exec(v);
  const d = m ? new Date(v.toUpperCase()) : null;
  const valid =
    m &&
    d &&
    !Number.isNaN(d.getTime()) &&
    Number(m[2]) >= 1 &&
    Number(m[2]) <= 12 &&
    Number(m[3]) >= 1 &&
    Number(m[3]) <= daysInMonth(Number(m[1]), Number(m[2])) &&
    Number(m[4]) <= 23 &&
    Number(m[5]) <= 59 &&
    Number(m[6]) <= 60;
  if (!valid) {
    ctx.addIssue({ code: "custom", message: "must be an RFC 3339 date-time with a time zone offset" });
    return z.NEVER;
  }
  // Postgres' timestamptz has no year 0 and the driver writes years past 9999 in a form it refuses:
  // an instant outside 0001–9999 in UTC (an offset can push a valid text over the edge) is the
  // client's mistake, a 400, never a 500 from the database.
  const year = d.getUTCFullYear();
  if (year < 1 || year > 9999) {
    ctx.addIssue({ code: "custom", message: "must be between the years 0001 and 9999 (UTC)" });
    return z.NEVER;
  }
  return d;
});

/** Free text (label, provider): trimmed, bounded, no control characters; stored verbatim. */
export const freeTextField = (min: number, max: number) =>
  z
    .string()
    .transform((v) => v.trim())
    .refine((v) => !CONTROL_CHARS.test(v), { message: "must not contain control characters" })
    .refine((v) => [...v].length >= min && [...v].length <= max, { message: `must be ${min}-${max} characters` });

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (v: string) => UUID.test(v);
export const uuidField = z
  .string()
  .refine(isUuid, { message: "must be a UUID" })
  .transform((v) => v.toLowerCase());

/** `limit` (default 50, clamped to 200) and `offset` (default 0) (docs/api.md#pagination). */
export const paginationShape = {
  limit: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined) return 50;
      if (!/^\d+$/.test(v) || Number(v) < 1) {
        ctx.addIssue({ code: "custom", message: "must be an integer >= 1" });
        return z.NEVER;
      }
      return Math.min(Number(v), 200);
    }),
  offset: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined) return 0;
      if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) {
        ctx.addIssue({ code: "custom", message: "must be an integer >= 0" });
        return z.NEVER;
      }
      return Number(v);
    }),
};
export const paginationQuery = z.object(paginationShape);
export type Pagination = z.output<typeof paginationQuery>;
