import { z } from "zod";
import { recordingModes } from "../db/schema/sessions.js";
import { commonConfigShape } from "./common.js";
import { intVar, listenAddrVar, optionalListenAddrVar } from "./fields.js";
import { parseConfig } from "./parse.js";

export const sshdConfigSchema = z.object({
  ...commonConfigShape,
  SSH_LISTEN_ADDR: listenAddrVar(":2222"),
  HANDOFF_TICKET_TTL_SECONDS: intVar(120, 1),
  SSH_LOGIN_GRACE_SECONDS: intVar(30, 1),
  // Connections not yet authenticated, per client address and in total (issue 10 §2, like
  // OpenSSH's MaxStartups): beyond either the TCP connection is closed at once, before the banner.
  SSH_MAX_UNAUTH_PER_IP: intVar(10, 1, 100_000),
  SSH_MAX_UNAUTH_TOTAL: intVar(256, 1, 1_000_000),
  // `env` requests a session channel buffers until its shell/exec starts, and the bytes (names +
  // values) all not-yet-started sessions of one connection may buffer; beyond them a request fails.
  SSH_MAX_PENDING_ENV_PER_SESSION: intVar(64, 0, 10_000),
  SSH_MAX_PENDING_ENV_BYTES: intVar(65536, 0, 16 * 1024 * 1024),
  SSH_MAX_AUTH_TRIES: intVar(3, 1),
  SSH_LOCKOUT_MAX_PER_IP: intVar(20, 1),
  SSH_LOCKOUT_MAX_PER_LOGIN: intVar(10, 1),
  SSH_LOCKOUT_WINDOW_SECONDS: intVar(900, 1),
  SSH_IDLE_TIMEOUT_SECONDS: intVar(0, 0),
  SSH_KEEPALIVE_INTERVAL_SECONDS: intVar(30, 0),
  SSH_MAX_SESSIONS_PER_HOST: intVar(10, 1),
  SSH_HOST_DIAL_TIMEOUT_SECONDS: intVar(10, 1),
  // A login to a host stopped for idleness starts it and waits this long for it (docs/idle.md#wake).
  WAKE_TIMEOUT_SECONDS: intVar(120, 1, 3600),
  SSH_FORWARD_BLOCKLIST: z.string().default(""),
  // Optional listener serving only GET /metrics, without a token (README "Observability").
  SSHD_METRICS_LISTEN_ADDR: optionalListenAddrVar(),
  HOST_SSH_USER: z.string().default("workspace"),
  // SSH session recording (docs/sessions.md#recording): the default when neither the host nor its
  // owner sets one; a recording stops at SESSION_RECORDING_MAX_BYTES (the session goes on).
  SESSION_RECORDING: z.enum(recordingModes).default("off"),
  SESSION_RECORDING_MAX_BYTES: intVar(16 * 1024 * 1024, 4096, 1024 * 1024 * 1024),
});

export type SshdConfig = z.output<typeof sshdConfigSchema>;

export function parseSshdConfig(source: Record<string, string | undefined>): SshdConfig {
  return parseConfig(sshdConfigSchema, source);
}
