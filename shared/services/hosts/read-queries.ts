import { and, desc, eq, sql, type SQL } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.js";
import { egressIps, engineImages, hostEgressBindings, hosts, systemKeys, tasks, users } from "../../db/schema/index.js";
import { SSH_PROXY_HOST_KEY } from "../system-keys/ensure.js";
import { hostViewColumns } from "./render.js";

/**
 * The statements behind the hot host reads (`GET /v1/admin/hosts`, `GET /v1/{admin,user}/hosts/{id}`;
 * issue 12): each answers in one round trip and is built once per database handle (drizzle's
 * prepared statements; Postgres keeps each parsed per connection). Before, a host detail took
 * four sequential queries and a list two, and rebuilding their SQL was 16% of a detail's CPU; on
 * a loaded 2-core machine every round trip also costs a socket write and a wake-up on both sides
 * (the writes alone were 29% of a detail's CPU).
 */

type Prepared<T> = WeakMap<DbOrTx, T>;
function once<T>(cache: Prepared<T>, db: DbOrTx, build: (db: DbOrTx) => T): T {
  let q = cache.get(db);
  if (!q) cache.set(db, (q = build(db)));
  return q;
}

export interface HostListFilter {
  status?: string;
  userId?: string;
}

type Shape = { status: boolean; userId: boolean };
const slotOf = (shape: Shape) => (shape.status ? 1 : 0) + (shape.userId ? 2 : 0);
const nameOf = (stem: string, shape: Shape) => `${stem}_${shape.status ? "s" : ""}${shape.userId ? "u" : ""}`;
function filterOf(shape: Shape): SQL | undefined {
  const conds: SQL[] = [];
  if (shape.status) conds.push(eq(hosts.status, sql.placeholder("status")));
  if (shape.userId) conds.push(eq(hosts.userId, sql.placeholder("userId")));
  return conds.length ? and(...conds) : undefined;
}

/**
 * Which row versions a list row is rendered from: the host's id, then the `xmin` of the host,
 * owner, binding, egress and engine-images rows it joins ("-" where a left join found none).
 * `xmin` is the id of the transaction that wrote that version of the row: any insert, update or
 * delete of one of them gives the page a new stamp. Two snapshots that show the same stamp show
 * the same row versions — a transaction's versions are all visible once it has committed, only
 * its last version of a row survives it, and every joined row is found by a unique key of the
 * host row — so they render the same bytes. Transaction ids come round again only after 2^32 of
 * them, far beyond an entry's life (HostListCache's maxAgeMs). Columns nobody renders (a repair
 * counter) also change the stamp: that costs a render, never a stale answer.
 */
const hostRowStamp = sql<string>`${hosts.id}::text || ':' || ${hosts}.xmin::text || ':' || ${users}.xmin::text || ':' || coalesce(${hostEgressBindings}.xmin::text, '-') || ':' || coalesce(${egressIps}.xmin::text, '-') || ':' || coalesce(${engineImages}.xmin::text, '-')`;

/** This statement's snapshot, after the server's start time (see prepareCheck). */
const snapshotSql = sql<string>`pg_postmaster_start_time()::text || '@' || pg_current_snapshot()::text`;

/**
 * A page's stamp: the server's start time (a restored server reuses transaction ids), the whole
 * filtered set's size, then its rows' stamps in list order, `;`-joined (a row stamp is made of hex
 * digits, `-` and `:` only, so the joined string is unambiguous).
 */
export const pageStamp = (snapshot: string, total: number, joinedRowStamps: string) =>
  `${snapshot.slice(0, snapshot.indexOf("@"))}|${total}|${joinedRowStamps}`;

/**
 * One statement per filter shape (none, status, owner, both), so each keeps a plan that uses its
 * index. `total` is the size of the whole filtered set (a window over it, before limit/offset);
 * `stamp` is the row's hostRowStamp, read in the same snapshot as the columns it vouches for.
 */
function prepareList(db: DbOrTx, shape: Shape) {
  return db
    .select({ ...hostViewColumns, total: sql<number>`count(*) over ()`.mapWith(Number), stamp: hostRowStamp, snapshot: snapshotSql })
    .from(hosts)
    .innerJoin(users, eq(users.id, hosts.userId))
    .leftJoin(engineImages, eq(engineImages.engineId, hosts.engineId))
    .leftJoin(hostEgressBindings, eq(hostEgressBindings.hostId, hosts.id))
    .leftJoin(egressIps, eq(egressIps.id, hostEgressBindings.egressIpId))
    .where(filterOf(shape))
    .orderBy(desc(hosts.createdAt), desc(hosts.id))
    .limit(sql.placeholder("limit"))
    .offset(sql.placeholder("offset"))
    .prepare(nameOf("host_list", shape));
}
const lists = [0, 1, 2, 3].map(() => new WeakMap<DbOrTx, ReturnType<typeof prepareList>>());

function prepareCount(db: DbOrTx, shape: Shape) {
  return db
    .select({ total: sql<number>`count(*)`.mapWith(Number), snapshot: snapshotSql })
    .from(hosts)
    .where(filterOf(shape))
    .prepare(nameOf("host_count", shape));
}
const counts = [0, 1, 2, 3].map(() => new WeakMap<DbOrTx, ReturnType<typeof prepareCount>>());

/**
 * A page of hosts (rows of `hostViewColumns`, newest first), the number of hosts the filter
 * matches, and the page's stamp and snapshot, all read in one snapshot (see prepareCheck).
 */
export async function listHostViewRows(db: DbOrTx, filter: HostListFilter, page: { limit: number; offset: number }) {
  const shape = { status: filter.status !== undefined, userId: filter.userId !== undefined };
  const slot = slotOf(shape);
  const params = { status: filter.status, userId: filter.userId, limit: page.limit, offset: page.offset };
  const rows = await once(lists[slot]!, db, (d) => prepareList(d, shape)).execute(params);
  let total: number;
  let snapshot: string;
  if (rows.length) ({ total, snapshot } = rows[0]!);
  // The window counts only when a row came back: an empty page needs the count on its own (and
  // its snapshot, which is then the one the empty page and the count were both read in).
  else [{ total, snapshot }] = (await once(counts[slot]!, db, (d) => prepareCount(d, shape)).execute(params)) as [{ total: number; snapshot: string }];
  return {
    rows,
    total,
    stamp: pageStamp(snapshot, total, rows.map((r) => r.stamp).join(";")),
    // An empty page and its count were read in two statements: no one snapshot vouches for both.
    snapshot: rows.length ? snapshot : undefined,
  };
}

/**
 * Whether a page is still what a stored body shows, in one statement and, when nothing at all was
 * committed since, at the cost of a `select 1` (HostListCache):
 *
 * - `snapshot`: this statement's snapshot (`pg_current_snapshot()`: the next transaction id and
 *   those in progress), after the server's start time. Two statements with the same snapshot see
 *   the same committed transactions, hence the same rows, in every table; the start time keeps a
 *   restored or restarted server from matching an old text. When it equals `known` (the stored
 *   body's), `total` and `stamps` are not computed (CASE evaluates its sub-selects lazily).
 * - otherwise `total` and `stamps`: the page's stamp (hostRowStamp), from the same join, filter,
 *   order and page, aggregated in Postgres (one short row back instead of 200 wide ones). Any
 *   write in the cluster changes the snapshot, so under traffic this is the usual check.
 */
function prepareCheck(db: DbOrTx, shape: Shape) {
  const page = db
    .select({ stamp: hostRowStamp.as("stamp"), createdAt: hosts.createdAt, id: hosts.id })
    .from(hosts)
    .innerJoin(users, eq(users.id, hosts.userId))
    .leftJoin(engineImages, eq(engineImages.engineId, hosts.engineId))
    .leftJoin(hostEgressBindings, eq(hostEgressBindings.hostId, hosts.id))
    .leftJoin(egressIps, eq(egressIps.id, hostEgressBindings.egressIpId))
    .where(filterOf(shape))
    .orderBy(desc(hosts.createdAt), desc(hosts.id))
    .limit(sql.placeholder("limit"))
    .offset(sql.placeholder("offset"))
    .as("page");
  const where = filterOf(shape);
  const known = sql`now_seen.snapshot = ${sql.placeholder("known")}`;
  return db
    .select({
      snapshot: sql<string>`now_seen.snapshot`,
      total: sql<number | null>`case when ${known} then null else (select count(*) from ${hosts}${where ? sql` where ${where}` : sql``}) end`.mapWith(
        (v) => (v === null ? null : Number(v)),
      ),
      stamps: sql<string | null>`case when ${known} then null else (select coalesce(string_agg(${page.stamp}, ';' order by ${page.createdAt} desc, ${page.id} desc), '') from ${page}) end`,
    })
    .from(sql`(select ${snapshotSql} as snapshot) now_seen`)
    .prepare(nameOf("host_list_check", shape));
}
const checks = [0, 1, 2, 3].map(() => new WeakMap<DbOrTx, ReturnType<typeof prepareCheck>>());

/**
 * The state of a page of the host list now: `unchanged` when the snapshot is `known` (nothing was
 * committed anywhere since), else its current stamp; `snapshot` either way.
 */
export async function checkHostListPage(
  db: DbOrTx,
  filter: HostListFilter,
  page: { limit: number; offset: number },
  known: string | undefined,
): Promise<{ snapshot: string; stamp: string | null }> {
  const shape = { status: filter.status !== undefined, userId: filter.userId !== undefined };
  const params = { status: filter.status, userId: filter.userId, limit: page.limit, offset: page.offset, known: known ?? "" };
  const [row] = await once(checks[slotOf(shape)]!, db, (d) => prepareCheck(d, shape)).execute(params);
  const snapshot = row!.snapshot;
  if (row!.total === null || row!.stamps === null) return { snapshot, stamp: null };
  return { snapshot, stamp: pageStamp(snapshot, row!.total, row!.stamps) };
}

function prepareDetail(db: DbOrTx) {
  // The host's newest task, as a lateral join: the index tasks_host_idx (host_id, created_at) serves it.
  const lastTask = db
    .select({
      id: tasks.id,
      kind: tasks.kind,
      status: tasks.status,
      progressPercent: tasks.progressPercent,
      progressMessage: tasks.progressMessage,
      errorCode: tasks.errorCode,
      errorMessage: tasks.errorMessage,
      createdAt: tasks.createdAt,
      finishedAt: tasks.finishedAt,
    })
    .from(tasks)
    .where(eq(tasks.hostId, hosts.id))
    .orderBy(desc(tasks.createdAt), desc(tasks.id))
    .limit(1)
    .as("last_task");
  return db
    .select({
      ...hostViewColumns,
      // The admin detail renders the whole egress object (renderEgress) and the binding's host.
      binding: { id: hostEgressBindings.id, hostId: hostEgressBindings.hostId },
      egress: egressIps,
      lastTask: {
        id: lastTask.id,
        kind: lastTask.kind,
        status: lastTask.status,
        progressPercent: lastTask.progressPercent,
        progressMessage: lastTask.progressMessage,
        errorCode: lastTask.errorCode,
        errorMessage: lastTask.errorMessage,
        createdAt: lastTask.createdAt,
        finishedAt: lastTask.finishedAt,
      },
      sshHostKey: sql<string | null>`(select ${systemKeys.publicKey} from ${systemKeys} where ${systemKeys.name} = ${SSH_PROXY_HOST_KEY})`,
    })
    .from(hosts)
    .innerJoin(users, eq(users.id, hosts.userId))
    .leftJoin(engineImages, eq(engineImages.engineId, hosts.engineId))
    .leftJoin(hostEgressBindings, eq(hostEgressBindings.hostId, hosts.id))
    .leftJoin(egressIps, eq(egressIps.id, hostEgressBindings.egressIpId))
    .leftJoinLateral(lastTask, sql`true`)
    .where(eq(hosts.id, sql.placeholder("id")))
    .prepare("host_detail");
}
const details = new WeakMap<DbOrTx, ReturnType<typeof prepareDetail>>();

/** One host with everything its detail renders (host, owner, egress, last task, the SSH proxy's host key), or undefined. */
export async function hostDetailRow(db: DbOrTx, id: string) {
  const [row] = await once(details, db, prepareDetail).execute({ id });
  return row;
}
export type HostDetailRow = NonNullable<Awaited<ReturnType<typeof hostDetailRow>>>;
