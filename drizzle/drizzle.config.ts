import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "postgresql",
  schema: "./shared/db/schema/index.ts",
  out: "./drizzle/migrations",
  casing: "snake_case",
  // Only `generate` and `check` are used: migrations are applied by drizzle/migrate.ts, never `push`.
  dbCredentials: { url: process.env.DATABASE_URL ?? "postgres://localhost/unused" },
});
