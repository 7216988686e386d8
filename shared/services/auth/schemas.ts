import { z } from "zod";
import { asciiLower, newPasswordField, presentedPasswordField } from "../../validation.js";

export const loginInput = z.strictObject({
  username: z
    .string()
    .refine((v) => v.length >= 1 && v.length <= 128, { message: "must be 1-128 characters" })
    .transform(asciiLower),
  password: presentedPasswordField,
});
export type LoginInput = z.output<typeof loginInput>;

export const changePasswordInput = z.strictObject({
  old_password: presentedPasswordField,
  new_password: newPasswordField,
});
export type ChangePasswordInput = z.output<typeof changePasswordInput>;
