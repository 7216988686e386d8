import type { UserRow } from "../../db/schema/index.js";
import { Conflict } from "../../errors.js";

/** The seeded admin account is managed by the environment, not the API (behaviour.md §3.2). */
export function assertNotAdmin(user: UserRow, what: string): void {
  if (user.role === "admin") throw Conflict("admin_protected", `cannot ${what} the admin account`);
}
