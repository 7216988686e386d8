import { sql } from "drizzle-orm";
import { check, index, pgTable, text, unique, uuid } from "drizzle-orm/pg-core";
import { createdAt, id } from "./columns.js";
import { users } from "./users.js";

export const sshKeyTypes = ["ed25519", "ecdsa", "rsa"] as const;

export const sshKeys = pgTable(
  "ssh_keys",
  {
    id: id(),
    userId: uuid()
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    label: text().notNull().default(""),
    keyType: text({ enum: sshKeyTypes }).notNull(),
    fingerprint: text().notNull(),
    /** Normalised `<algorithm> <base64>[ <comment>]`. Public keys are not secrets. */
    publicKey: text().notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    unique("ssh_keys_user_fingerprint_uq").on(t.userId, t.fingerprint),
    index("ssh_keys_user_idx").on(t.userId, t.createdAt.desc()),
    index("ssh_keys_fingerprint_idx").on(t.fingerprint),
    check("ssh_keys_type_ck", sql`${t.keyType} in ('ed25519','ecdsa','rsa')`),
  ],
);

export type SshKeyRow = typeof sshKeys.$inferSelect;
