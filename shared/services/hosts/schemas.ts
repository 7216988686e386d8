import { z } from "zod";
import { hostStatuses } from "../../db/schema/index.js";
import { paginationShape, uuidField } from "../../validation.js";
import { idleCpuPercentField, idleStopMinutesField } from "./idle-policy.js";

const TIMEZONES = new Set<string>([...Intl.supportedValuesOf("timeZone"), "UTC", "Etc/UTC"]);

/** Engine labels, and a selector over them: a few short `key: value` pairs (docs/engines.md#labels). */
export const engineLabels = z
  .record(
    z.string().regex(/^[a-z0-9]([a-z0-9._/-]{0,62})$/, "label keys are lowercase letters, digits and . _ / - (at most 63)"),
    z.string().regex(/^[A-Za-z0-9._-]{0,63}$/, "label values are letters, digits and . _ - (at most 63)"),
  )
  .refine((v) => Object.keys(v).length <= 16, { message: "at most 16 labels" });

export const timezoneField = z.string().refine((v) => TIMEZONES.has(v), { message: "must be an IANA time zone name" });

/**
 * What a create without limits gets: also the one shape the warm pool keeps ready
 * (docs/architecture.md#warm-pool), so a plain create claims a running member.
 */
export const HOST_SHAPE_DEFAULTS = { memoryLimitMb: 4096, cpuLimit: 2, pidsLimit: 1024, timezone: "UTC" } as const;

export const createHostInput = z.strictObject({
  user_id: uuidField,
  egress_ip_id: uuidField.nullish(),
  memory_limit_mb: z.number().int().min(128).max(262144).default(HOST_SHAPE_DEFAULTS.memoryLimitMb),
  cpu_limit: z
    .number()
    .min(0.1)
    .max(64)
    .refine((v) => Math.abs(Math.round(v * 100) - v * 100) < 1e-9, { message: "must have at most 2 decimals" })
    .default(HOST_SHAPE_DEFAULTS.cpuLimit),
  pids_limit: z.number().int().min(64).max(131072).default(HOST_SHAPE_DEFAULTS.pidsLimit),
  /** MiB of the home's fixed-size filesystem; omitted = the engine's HOST_DISK_LIMIT_MB. */
  disk_limit_mb: z.number().int().min(256).max(1048576).nullish(),
  timezone: timezoneField.default(HOST_SHAPE_DEFAULTS.timezone),
  /** Which engine (docs/engines.md#placement): every label in `selector` must match; spread (default) or pack. */
  placement: z
    .strictObject({
      strategy: z.enum(["spread", "pack"]).default("spread"),
      selector: engineLabels.default({}),
    })
    .default({ strategy: "spread", selector: {} }),
  /** The idle policy (docs/idle.md#policy); absent or null = the owner's, then the global default. */
  idle_stop_minutes: idleStopMinutesField.optional(),
  idle_cpu_percent: idleCpuPercentField.optional(),
  always_on: z.boolean().default(false),
});
export type CreateHostInput = z.output<typeof createHostInput>;

export const listHostsQuery = z.object({
  ...paginationShape,
  status: z.enum(hostStatuses).optional(),
  user_id: uuidField.optional(),
});
export type ListHostsQuery = z.output<typeof listHostsQuery>;

export const rebuildInput = z.strictObject({ mode: z.enum(["preserve-home", "wipe-home"]).default("preserve-home") });
export type RebuildInput = z.output<typeof rebuildInput>;

export const deleteHostQuery = z.object({ keep_home: z.enum(["true", "false"]).optional() });
