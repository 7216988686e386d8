import { z } from "zod";
import { freeTextField } from "../../validation.js";

export const addKeyInput = z.strictObject({
  public_key: z.string().max(16 * 1024, { message: "must be at most 16 KiB" }),
  label: freeTextField(0, 100).optional(),
});
export type AddKeyInput = z.output<typeof addKeyInput>;

export const generateKeyInput = z.strictObject({ label: freeTextField(0, 100).optional() });
export type GenerateKeyInput = z.output<typeof generateKeyInput>;

export const MAX_KEYS_PER_USER = 50;
