import { Invalid, type ServiceError } from "../../shared/errors.js";
import { PayloadTooLarge } from "./errors.js";

export const MAX_BODY_BYTES = 1024 * 1024;

/**
 * Read the request body with a hard 1 MiB cap whether or not Content-Length is sent; stops
 * reading as soon as the cap is passed (docs/api.md#routing).
 */
export async function readBodyText(req: Request, limit = MAX_BODY_BYTES): Promise<string> {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) throw PayloadTooLarge();
  if (!req.body) return "";
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      throw PayloadTooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** JSON object bodies whatever the Content-Type; an empty body means `{}` only where optional. */
export function parseJsonObject(text: string, optional: boolean): Record<string, unknown> {
  if (text.trim() === "") {
    if (optional) return {};
    throw bodyError("request body is required (a JSON object)");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw bodyError("request body is not valid JSON");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw bodyError("request body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

function bodyError(message: string): ServiceError {
  return Invalid([{ field: "body", message }], message);
}
