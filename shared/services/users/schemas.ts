import { z } from "zod";
import { newPasswordField, paginationShape, timestampField, usernameField } from "../../validation.js";

export const createUserInput = z.strictObject({
  username: usernameField,
  password: newPasswordField.nullish(),
  expires_at: timestampField.nullish(),
});
export type CreateUserInput = z.output<typeof createUserInput>;

export const listUsersQuery = z.object({
  ...paginationShape,
  status: z.enum(["active", "disabled", "expired"]).optional(),
  role: z.enum(["admin", "user"]).optional(),
});
export type ListUsersQuery = z.output<typeof listUsersQuery>;

export const setUserStatusInput = z.strictObject({ status: z.enum(["active", "disabled"]) });

export const setUserExpiryInput = z.strictObject({
  // The key is required; `null` clears the expiry.
  expires_at: timestampField.nullable(),
});
