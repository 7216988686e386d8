import { z } from "zod";
import { intVar, isNotPlaceholder, PLACEHOLDER_MESSAGE } from "./fields.js";

/** Variables every process reads (docs/operations.md#configure, "A W S"). */
export const commonConfigShape = {
  DATABASE_URL: z
    .string()
    // Its password is the secret; checked first, so the message names the placeholder.
    .refine(isNotPlaceholder, PLACEHOLDER_MESSAGE)
    .refine((v) => /^postgres(ql)?:\/\//.test(v), "must be a postgres:// URL"),
  REDIS_URL: z
    .string()
    .default("redis://127.0.0.1:6379")
    .refine(isNotPlaceholder, PLACEHOLDER_MESSAGE)
    .refine((v) => /^rediss?:\/\//.test(v), "must be a redis:// URL"),
  REDIS_PREFIX: z
    .string()
    .default("ccp")
    .refine((v) => /^[A-Za-z0-9_-]{1,32}$/.test(v), "must be 1-32 characters of A-Z a-z 0-9 _ -"),
  SECRETS_KEY: z
    .string()
    .refine(isNotPlaceholder, PLACEHOLDER_MESSAGE)
    .refine((v) => /^v\d+:[A-Za-z0-9+/]{43}=$/.test(v), "must be v<N>:<base64 of 32 bytes>"),
  SECRETS_KEY_PREVIOUS: z
    .string()
    .default("")
    .refine(isNotPlaceholder, PLACEHOLDER_MESSAGE)
    .refine(
      (v) => v.split(",").every((k) => k.trim() === "" || /^v\d+:[A-Za-z0-9+/]{43}=$/.test(k.trim())),
      "must be a comma-separated list of v<N>:<base64 of 32 bytes>",
    ),
  // Pending tasks one host may have queued by requests (start/stop/rebuild/key sync); beyond it a
  // request answers 429 too_many_tasks (issue 10 §2). System tasks are never capped.
  HOST_MAX_PENDING_TASKS: intVar(8, 1, 1000),
  // An engine no worker has reached Docker on for this long is dead (docs/engines.md#health): its
  // hosts turn `unreachable` and creates go elsewhere while anything else fits.
  ENGINE_DEAD_AFTER_SECONDS: intVar(30, 10, 3600),
  LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
  LOG_FORMAT: z.enum(["json", "pretty"]).default("json"),
};
