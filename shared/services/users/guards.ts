import type { UserRow } from "../../db/schema/index.js";
import { Conflict } from "../../errors.js";

/** The seeded admin account is managed by the environment, not the API (docs/api.md#users). */
export function assertNotAdmin(user: UserRow, what: string): void {
  if (user.role === "admin") throw Conflict("admin_protected", `cannot ${what} the admin account`);
}
