import type { UserRow } from "../../db/schema/index.js";
import type { UserView } from "../../views/index.js";

export const isExpired = (u: Pick<UserRow, "expiresAt">, now: Date) =>
  u.expiresAt !== null && u.expiresAt.getTime() <= now.getTime();

/** The user object of docs/api.md#users. Never includes the hash or token version. */
export function renderUser(u: UserRow, now: Date): UserView {
  return {
    id: u.id,
    username: u.username,
    role: u.role,
    status: u.status,
    expires_at: u.expiresAt ? u.expiresAt.toISOString() : null,
    expired: isExpired(u, now),
    session_recording: u.sessionRecording,
    idle_stop_minutes: u.idleStopMinutes,
    idle_cpu_percent: u.idleCpuPercent,
    created_at: u.createdAt.toISOString(),
    updated_at: u.updatedAt.toISOString(),
  };
}
export type { UserView };
