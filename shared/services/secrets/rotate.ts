import { type SQL, sql } from "drizzle-orm";
import { SECRET_COLUMNS, type SecretBox, type SecretLocation, type SecretTable } from "../../crypto/secrets.js";
import type { Db } from "../../db/client.js";
import { recordEvent } from "../events.js";

/**
 * Every column that holds a SecretBox ciphertext (docs/api.md#secrets), by table, with the table's
 * primary key; defined next to the cipher, whose additional data names them.
 * test/integration/secrets-rotate.test.ts checks this list against every `*_enc` column of the
 * migrated schema, so a new secret column cannot be forgotten here.
 */
export { SECRET_COLUMNS };

/** One stored value that could not be re-encrypted; names where it is, never what it holds. */
export interface UnreadableSecret {
  table: SecretTable;
  column: string;
  key: string;
  /** The key version the ciphertext names; null when it names none (malformed). */
  version: number | null;
  reason: string;
}

export interface RotateSecretsResult {
  toVersion: number;
  /** Table rows rewritten. */
  rows: number;
  /** Ciphertexts re-encrypted (a host row holds up to three). */
  values: number;
  tables: Record<SecretTable, { rows: number; values: number }>;
  unreadable: UnreadableSecret[];
}

export class SecretsRotationError extends Error {
  constructor(readonly result: RotateSecretsResult) {
    const listed = result.unreadable
      .slice(0, 20)
      .map((u) => `${u.table}.${u.column} of ${u.key}: ${u.reason}`)
      .join("; ");
    const more = result.unreadable.length > 20 ? `; and ${result.unreadable.length - 20} more` : "";
    const versions = [...new Set(result.unreadable.map((u) => u.version).filter((v) => v !== null))]
      .sort((a, b) => a - b)
      .map((v) => `v${v}`);
    super(
      `${result.unreadable.length} secret(s) could not be re-encrypted and were left unchanged` +
        (versions.length ? ` (key version ${versions.join(", ")} not available)` : "") +
        `: ${listed}${more}`,
    );
    this.name = "SecretsRotationError";
  }
}

/**
 * Re-encrypt every stored secret with the current key (docs/operations.md#rotate-keys, `secrets:rotate`), in
 * the current format, bound to its table, column and row (issue 10 §5): this is also the migration
 * of legacy, unbound `v<N>:` ciphertexts, even those already under the current key.
 *
 * - Idempotent: values already current (key and format) are not touched.
 * - Resumable: one short transaction per row (`for update`, then the value is read again), so an
 *   interrupted run keeps what it finished, and running processes that write a secret meanwhile
 *   are never overwritten with a stale value.
 * - Never drops a secret: a value whose key version is missing (or that fails to decrypt) leaves
 *   its whole row unchanged; the run carries on, then throws `SecretsRotationError` naming each
 *   such value and version. Every new ciphertext is decrypted again before it is written.
 *
 * Writes `secrets.rotated` `{to_version, rows}` when it rewrote anything.
 */
export async function rotateSecrets({
  db,
  secrets,
  pageSize = 100,
}: {
  db: Db;
  secrets: SecretBox;
  /** Row keys fetched per query; each row still gets its own transaction. */
  pageSize?: number;
}): Promise<RotateSecretsResult> {
  const toVersion = secrets.currentVersion;
  // Only the current format under the current key is left alone (SecretBox.isCurrent, in SQL).
  const current = `v${toVersion}a:%`;
  const result: RotateSecretsResult = {
    toVersion,
    rows: 0,
    values: 0,
    tables: Object.fromEntries(Object.keys(SECRET_COLUMNS).map((t) => [t, { rows: 0, values: 0 }])) as RotateSecretsResult["tables"],
    unreadable: [],
  };

  for (const table of Object.keys(SECRET_COLUMNS) as SecretTable[]) {
    const { key, columns } = SECRET_COLUMNS[table];
    const t = sql.identifier(table);
    const k = sql.identifier(key);
    const cols = columns.map((c) => sql.identifier(c));
    const stale = sql.join(
      cols.map((c) => sql`(${c} is not null and ${c} not like ${current})`),
      sql` or `,
    );
    // Keyset pagination: each row is visited once per run, even the ones left unchanged.
    let after: string | null = null;
    for (;;) {
      const page: SQL = sql`select ${k}::text as key from ${t}
        where ${after === null ? sql`true` : sql`${k} > ${after}`} and (${stale})
        order by ${k} limit ${pageSize}`;
      const keys = (await db.execute<{ key: string }>(page)).map((r) => r.key);
      if (keys.length === 0) break;
      for (const rowKey of keys) {
        after = rowKey;
        const changed = await db.transaction(async (tx) => {
          const [row] = await tx.execute<Record<string, string | null>>(
            sql`select ${sql.join(cols, sql`, `)} from ${t} where ${k} = ${rowKey} for update`,
          );
          if (!row) return 0; // deleted meanwhile
          const updates: SQL[] = [];
          let failed = false;
          for (const column of columns) {
            const value = row[column];
            if (value === null || value === undefined) continue;
            let version: number | null = null;
            try {
              if (secrets.isCurrent(value)) continue;
              version = secrets.versionOf(value);
              const at = { table, column, row: rowKey } as SecretLocation;
              const plaintext = secrets.decrypt(value, at);
              const next = secrets.encrypt(plaintext, at);
              if (secrets.decrypt(next, at) !== plaintext) throw new Error("re-encrypted value does not decrypt back");
              updates.push(sql`${sql.identifier(column)} = ${next}`);
            } catch (err) {
              // The message names the version or the failure (GCM auth, malformed), never the value.
              const reason = err instanceof Error ? err.message : String(err);
              result.unreadable.push({ table, column, key: rowKey, version, reason });
              failed = true;
            }
          }
          // All of a row's secrets move together, or none does.
          if (failed || updates.length === 0) return 0;
          await tx.execute(sql`update ${t} set ${sql.join(updates, sql`, `)} where ${k} = ${rowKey}`);
          return updates.length;
        });
        if (changed > 0) {
          result.rows += 1;
          result.values += changed;
          result.tables[table].rows += 1;
          result.tables[table].values += changed;
        }
      }
    }
  }

  if (result.rows > 0) {
    const incomplete = result.unreadable.length > 0;
    await recordEvent(db, {
      type: "secrets.rotated",
      level: incomplete ? "warn" : "info",
      message: `${result.rows} rows re-encrypted with secrets key v${toVersion}${incomplete ? " (incomplete)" : ""}`,
      metadata: { to_version: toVersion, rows: result.rows, ...(incomplete ? { unreadable: result.unreadable.length } : {}) },
    });
  }
  if (result.unreadable.length > 0) throw new SecretsRotationError(result);
  return result;
}
