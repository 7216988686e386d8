import { pgTable, text } from "drizzle-orm/pg-core";
import { createdAt } from "./columns.js";

/** Process-wide key material shared by replicas, e.g. the SSH proxy host key (private half encrypted). */
export const systemKeys = pgTable("system_keys", {
  name: text().primaryKey(),
  privateKeyEnc: text().notNull(),
  publicKey: text().notNull(),
  createdAt: createdAt(),
});
