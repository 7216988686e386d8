/**
 * `node dist/main.js [roles]` — roles is a comma-separated subset of api, worker, sshd (default:
 * all three, under one supervisor with combined logs; if one dies, all stop).
 * `node dist/main.js migrate` applies the committed migrations and exits.
 * `node dist/main.js secrets:rotate` re-encrypts every stored secret with the current SECRETS_KEY.
 * `node dist/main.js checkd` is the egress check service, run alone on its own public machine
 * (checkd/main.ts, README "Deploying the egress check service (checkd)"); never part of the default.
 * `node dist/main.js --help` lists the roles and commands; `--version` prints the package version.
 * `node dist/main.js admin <command>` is the break-glass admin CLI (cli/admin.ts, README "Admin CLI").
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { runMigrations } from "./drizzle/migrate.js";
import { commonConfigShape } from "./shared/config/common.js";
import { createSecretBox } from "./shared/crypto/secrets.js";
import { loadEnvironment } from "./shared/config/env-file.js";
import { parseConfig } from "./shared/config/parse.js";
import { createDatabase } from "./shared/db/client.js";
import { parseOrExit } from "./shared/process/boot.js";
import { rotateSecrets, SecretsRotationError } from "./shared/services/secrets/rotate.js";
import { VERSION } from "./shared/version.js";

const ROLES = ["api", "worker", "sshd"] as const;
type Role = (typeof ROLES)[number];

async function runRole(role: Role): Promise<void> {
  const mod =
    role === "api"
      ? await import("./api/main.js")
      : role === "worker"
        ? await import("./worker/main.js")
        : await import("./sshd/main.js");
  await mod.main();
}

async function migrateCommand(): Promise<void> {
  const cfg = parseOrExit(
    () => parseConfig(z.object({ DATABASE_URL: commonConfigShape.DATABASE_URL }), loadEnvironment()),
    "migrate",
  );
  const database = createDatabase(cfg.DATABASE_URL, { max: 1, applicationName: "ccp-migrate" });
  try {
    await runMigrations(database);
    process.stdout.write("migrations applied\n");
  } finally {
    await database.close();
  }
}

/** docs/operations.md#rotate-keys: run after every process was restarted with the new SECRETS_KEY. */
async function rotateSecretsCommand(): Promise<void> {
  const cfg = parseOrExit(
    () =>
      parseConfig(
        z.object({
          DATABASE_URL: commonConfigShape.DATABASE_URL,
          SECRETS_KEY: commonConfigShape.SECRETS_KEY,
          SECRETS_KEY_PREVIOUS: commonConfigShape.SECRETS_KEY_PREVIOUS,
        }),
        loadEnvironment(),
      ),
    "secrets:rotate",
  );
  const secrets = createSecretBox(cfg.SECRETS_KEY, cfg.SECRETS_KEY_PREVIOUS);
  const database = createDatabase(cfg.DATABASE_URL, { max: 1, applicationName: "ccp-secrets-rotate" });
  const summary = (r: { rows: number; values: number; tables: Record<string, { rows: number; values: number }> }) =>
    `${r.rows} rows (${r.values} values) re-encrypted with key v${secrets.currentVersion}: ` +
    Object.entries(r.tables)
      .map(([table, t]) => `${table} ${t.rows}`)
      .join(", ");
  try {
    const result = await rotateSecrets({ db: database.db, secrets });
    process.stdout.write(`secrets:rotate: ${summary(result)}; every stored secret is now under v${result.toVersion}\n`);
  } catch (err) {
    if (!(err instanceof SecretsRotationError)) throw err;
    process.stdout.write(`secrets:rotate: ${summary(err.result)}\n`);
    process.stderr.write(`secrets:rotate: error: ${err.message}\n`);
    process.exitCode = 1;
  } finally {
    await database.close();
  }
}

/** Run several roles as child processes; their stdout/stderr pass straight through. */
function supervise(roles: Role[]): void {
  const self = fileURLToPath(import.meta.url);
  const children = new Map<Role, ChildProcess>();
  let exiting = false;
  let exitCode = 0;
  const stopAll = (signal: NodeJS.Signals) => {
    for (const child of children.values()) if (child.exitCode === null) child.kill(signal);
  };
  for (const role of roles) {
    const child = spawn(process.execPath, [...process.execArgv, self, role], { stdio: "inherit", env: process.env });
    children.set(role, child);
    child.on("exit", (code, signal) => {
      children.delete(role);
      if (!exiting) {
        exiting = true;
        exitCode = code === 0 ? 1 : (code ?? 1);
        process.stderr.write(`supervisor: ${role} exited (${signal ?? code}); stopping the others\n`);
        stopAll("SIGTERM");
      }
      if (children.size === 0) process.exit(exitCode);
    });
  }
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    process.on(sig, () => {
      if (!exiting) {
        exiting = true;
        exitCode = 0;
      }
      stopAll("SIGTERM");
    });
  }
}

/** `--help`: the roles and commands (README "Other scripts"). */
function usage(): string {
  return [
    `cloud-cli-proxy ${VERSION}`,
    "",
    "usage: node dist/main.js [roles | command] [--help | --version]",
    "",
    `roles (comma-separated; default: all of them under one supervisor): ${ROLES.join(", ")}`,
    "",
    "commands:",
    "  migrate            apply the committed database migrations and exit",
    "  secrets:rotate     re-encrypt every stored secret with the current SECRETS_KEY",
    "  checkd             the egress check service (IP echo, DNS canary), on its own machine",
    "  admin <command>    the break-glass admin CLI (README \"Admin CLI\")",
    "",
    "options:",
    "  --help, -h         this text",
    "  --version          the version (package.json), as /healthz reports it",
    "",
    "Configuration comes from the environment (see .env.example and README \"Configuration\").",
    "",
  ].join("\n");
}

async function run(argv: string[]): Promise<void> {
  const arg = argv[0] ?? ROLES.join(",");
  if (arg === "--version") return void process.stdout.write(`${VERSION}\n`);
  if (arg === "--help" || arg === "-h" || arg === "help") return void process.stdout.write(usage());
  if (arg === "migrate") return migrateCommand();
  if (arg === "secrets:rotate") return rotateSecretsCommand();
  if (arg === "checkd") return (await import("./checkd/main.js")).main();
  if (arg === "admin") {
    process.exitCode = await (await import("./cli/admin.js")).runAdmin(argv.slice(1));
    return;
  }
  const roles = [...new Set(arg.split(",").map((r) => r.trim()).filter(Boolean))];
  const unknown = roles.filter((r) => !(ROLES as readonly string[]).includes(r));
  if (unknown.length || roles.length === 0) {
    process.stderr.write(`usage: main.js [api,worker,sshd | migrate | secrets:rotate | admin <command>] (unknown: ${unknown.join(", ")})\n`);
    process.exit(2);
  }
  if (roles.length === 1) return runRole(roles[0] as Role);
  supervise(roles as Role[]);
}

run(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
