import type { z } from "zod";
import { type FieldIssue, Invalid } from "../../shared/errors.js";

/** Turn zod issues into the `details` of a 400 (docs/api.md#errors), one entry per problem. */
export function zodIssuesToDetails(issues: z.core.$ZodIssue[], prefix?: string): FieldIssue[] {
  const details: FieldIssue[] = [];
  const name = (path: PropertyKey[]) => {
    const p = path.map(String).join(".");
    return prefix ? (p ? `${prefix}.${p}` : prefix) : p || "body";
  };
  for (const issue of issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) details.push({ field: name([...issue.path, key]), message: "unknown field" });
    } else {
      details.push({ field: name(issue.path), message: issue.message });
    }
  }
  return details;
}

/** Parse with a schema or throw a 400 listing every problem. */
export function validate<S extends z.ZodType>(schema: S, input: unknown, prefix?: string): z.output<S> {
  const result = schema.safeParse(input, {
    error: (iss) => {
      if (iss.input === undefined && iss.code === "invalid_type") return "is required";
      if (iss.code === "invalid_type") return `must be ${iss.expected === "int" ? "an integer" : `a ${iss.expected}`}`;
      if (iss.code === "invalid_value") return `must be one of: ${iss.values.map(String).join(", ")}`;
      return undefined;
    },
  });
  if (result.success) return result.data;
  const details = zodIssuesToDetails(result.error.issues, prefix);
  throw Invalid(details);
}
