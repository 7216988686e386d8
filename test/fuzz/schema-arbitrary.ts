import fc from "fast-check";

/**
 * JSON Schema (the subset /openapi.json uses: type, enum, properties, required,
 * additionalProperties, items, format, min/max, anyOf/oneOf) → fast-check arbitraries.
 *
 * Values are *mostly valid*, so requests get past validation and reach the services, with a
 * share of hostile mutations at every level (wrong types, nulls, huge and odd strings, extra keys,
 * missing required keys), so validation itself is exercised too.
 */
export interface JsonSchema {
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  format?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  default?: unknown;
  description?: string;
}

/** Strings that have broken parsers elsewhere: traversal, encodings, control and wide characters. */
export const nastyString: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    "",
    " ",
    "../../etc/passwd",
    "..%2f..%2f",
    "%00",
    "\u0000",
    "\r\nX-Injected: 1",
    "${jndi:ldap://x}",
    "'; drop table users; --",
    "<script>alert(1)</script>",
    "\u202e\u200b\ud83d\ude00",
    "\ud800",
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "NaN",
    "-1",
    "1e309",
    "null",
    "true",
    "[]",
    "{}",
    "0x7f000001",
  ),
  fc.string({ unit: "binary", maxLength: 64 }),
  fc.string({ minLength: 1000, maxLength: 5000 }),
);

const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double(),
  nastyString,
  fc.constant([]),
  fc.constant({}),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }),
);

function stringFor(s: JsonSchema): fc.Arbitrary<string> {
  switch (s.format) {
    case "uuid":
      return fc.uuid();
    case "date-time":
      return fc.date({ min: new Date("1970-01-01T00:00:00Z"), max: new Date("2200-01-01T00:00:00Z"), noInvalidDate: true }).map((d) => d.toISOString());
    case "ipv4":
      return fc.ipV4();
    default:
      return fc.string({ minLength: s.minLength ?? 0, maxLength: Math.min(s.maxLength ?? 40, 200) });
  }
}

/** An arbitrary for one schema; `depth` bounds nesting. */
export function arbitraryFor(schema: JsonSchema | undefined, depth = 0): fc.Arbitrary<unknown> {
  if (!schema || depth > 4) return hostileValue;
  const valid = validFor(schema, depth);
  return fc.oneof({ arbitrary: valid, weight: 6 }, { arbitrary: hostileValue, weight: 1 });
}

function validFor(s: JsonSchema, depth: number): fc.Arbitrary<unknown> {
  if (s.const !== undefined) return fc.constant(s.const);
  if (s.enum) return fc.constantFrom(...s.enum);
  const alts = s.anyOf ?? s.oneOf;
  if (alts?.length) return fc.oneof(...alts.map((a) => arbitraryFor(a, depth + 1)));
  const types = Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
  if (types.length === 0) return s.properties ? objectFor(s, depth) : hostileValue;
  return fc.oneof(
    ...types.map((t): fc.Arbitrary<unknown> => {
      switch (t) {
        case "null":
          return fc.constant(null);
        case "string":
          return stringFor(s);
        case "integer":
          return fc.integer({ min: s.minimum ?? -1_000_000, max: s.maximum ?? 1_000_000 });
        case "number":
          return fc.double({ min: s.minimum ?? -1e6, max: s.maximum ?? 1e6, noNaN: true });
        case "boolean":
          return fc.boolean();
        case "array":
          return fc.array(arbitraryFor(s.items, depth + 1), { maxLength: 4 });
        case "object":
          return objectFor(s, depth);
        default:
          return hostileValue;
      }
    }),
  );
}

function objectFor(s: JsonSchema, depth: number): fc.Arbitrary<unknown> {
  const props = s.properties ?? {};
  const required = new Set(s.required ?? []);
  const shape = fc.record(
    Object.fromEntries(Object.entries(props).map(([k, v]) => [k, arbitraryFor(v, depth + 1)])),
    // Usually every required key is there; sometimes one is missing (validation must say which).
    { requiredKeys: [] },
  );
  const withRequired = fc
    .tuple(shape, fc.record(Object.fromEntries([...required].map((k) => [k, arbitraryFor(props[k], depth + 1)]))))
    .map(([opt, req]) => ({ ...opt, ...req }));
  const base = fc.oneof({ arbitrary: withRequired, weight: 5 }, { arbitrary: shape, weight: 1 });
  // Extra keys are refused where additionalProperties is false; the check must not trip on them.
  return fc.tuple(base, fc.option(fc.dictionary(fc.string({ minLength: 1, maxLength: 12 }), hostileValue, { maxKeys: 2 }), { freq: 8 })).map(
    ([o, extra]) => (extra ? { ...extra, ...(o as object) } : o),
  );
}
