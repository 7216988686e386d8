import { z } from "zod";
import { commonConfigShape } from "./common.js";
import { intVar, listenAddrVar } from "./fields.js";
import { parseConfig } from "./parse.js";

export const sshdConfigSchema = z.object({
  ...commonConfigShape,
  SSH_LISTEN_ADDR: listenAddrVar(":2222"),
  HANDOFF_TICKET_TTL_SECONDS: intVar(120, 1),
  SSH_LOGIN_GRACE_SECONDS: intVar(30, 1),
  SSH_MAX_AUTH_TRIES: intVar(3, 1),
  SSH_LOCKOUT_MAX_PER_IP: intVar(20, 1),
  SSH_LOCKOUT_MAX_PER_LOGIN: intVar(10, 1),
  SSH_LOCKOUT_WINDOW_SECONDS: intVar(900, 1),
  SSH_IDLE_TIMEOUT_SECONDS: intVar(0, 0),
  SSH_KEEPALIVE_INTERVAL_SECONDS: intVar(30, 0),
  SSH_MAX_SESSIONS_PER_HOST: intVar(10, 1),
  SSH_HOST_DIAL_TIMEOUT_SECONDS: intVar(10, 1),
  SSH_FORWARD_BLOCKLIST: z.string().default(""),
  HOST_SSH_USER: z.string().default("workspace"),
});

export type SshdConfig = z.output<typeof sshdConfigSchema>;

export function parseSshdConfig(source: Record<string, string | undefined>): SshdConfig {
  return parseConfig(sshdConfigSchema, source);
}
