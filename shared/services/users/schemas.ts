import { z } from "zod";
import { newPasswordField, paginationShape, timestampField, usernameField } from "../../validation.js";
import { idleCpuPercentField, idleStopMinutesField } from "../hosts/idle-policy.js";

export const createUserInput = z.strictObject({
  username: usernameField,
  password: newPasswordField.nullish(),
  expires_at: timestampField.nullish(),
  // The idle policy of the user's hosts (docs/idle.md#policy); absent or null = the global default.
  idle_stop_minutes: idleStopMinutesField.optional(),
  idle_cpu_percent: idleCpuPercentField.optional(),
});
export type CreateUserInput = z.output<typeof createUserInput>;

export const listUsersQuery = z.object({
  ...paginationShape,
  status: z.enum(["active", "disabled", "expired"]).optional(),
  role: z.enum(["admin", "user"]).optional(),
});
export type ListUsersQuery = z.output<typeof listUsersQuery>;

/** `PATCH /v1/admin/users/{userID}`: any of these, at least one (docs/api.md#users). */
export const setUserStatusInput = z
  .strictObject({
    status: z.enum(["active", "disabled"]).optional(),
    idle_stop_minutes: idleStopMinutesField.optional(),
    idle_cpu_percent: idleCpuPercentField.optional(),
  })
  .refine((v) => Object.keys(v).length > 0, { message: "at least one field is required" });

export const setUserExpiryInput = z.strictObject({
  // The key is required; `null` clears the expiry.
  expires_at: timestampField.nullable(),
});
