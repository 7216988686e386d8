import { sql } from "drizzle-orm";
import { timestamp, uuid } from "drizzle-orm/pg-core";

/** Column helpers shared by every table: UUID ids and timestamptz in UTC (docs/api.md#validation). */
export const id = () => uuid().primaryKey().default(sql`gen_random_uuid()`);
export const ts = () => timestamp({ withTimezone: true, mode: "date" });
export const createdAt = () => ts().notNull().defaultNow();
export const updatedAt = () => ts().notNull().defaultNow();
