/**
 * Which store the sync service's suites run on: IDSYNC_TEST_STORE=postgres puts each test
 * configuration's state in a fresh database of a private PostgreSQL 15 (test/helpers/postgres.ts),
 * else SQLite in the data folder as always. Like IDSYNC_CLOUD_TEST_STORE for the cloud directory.
 *
 *   const store = await testStoreConfig();   // undefined on SQLite
 *   writeFileSync(config, stringify({ dataDir: './data', ...(store ? { store } : {}), ... }));
 *
 * The database password goes where an operator puts it, $IDSYNC_STORE_PASSWORD, set in this
 * process's environment, which the CLI and service processes a test starts inherit.
 */
import { loadConfig } from '../../src/config/load.js';
import { STORE_PASSWORD_ENV, storeLocation } from '../../src/config/store.js';
import { openStore, type Database } from '../../src/store/database.js';
import { Sqlite } from '../../src/store/sqlite-driver.js';
import { sharedPostgres } from './postgres.js';

export type TestStoreKind = 'sqlite' | 'postgres';

export function testStoreKind(): TestStoreKind {
  return process.env.IDSYNC_TEST_STORE === 'postgres' ? 'postgres' : 'sqlite';
}

/** The `store:` block of a test configuration: a new database on PostgreSQL, undefined on SQLite. */
export async function testStoreConfig(kind: TestStoreKind = testStoreKind()): Promise<{ type: 'postgres'; url: string } | undefined> {
  if (kind === 'sqlite') return undefined;
  return postgresStoreConfig();
}

/** A `store:` block on a new PostgreSQL database (the password in $IDSYNC_STORE_PASSWORD, never in the YAML). */
export async function postgresStoreConfig(): Promise<{ type: 'postgres'; url: string }> {
  const pg = await sharedPostgres();
  const url = new URL(await pg.createDatabase());
  process.env[STORE_PASSWORD_ENV] = decodeURIComponent(url.password);
  url.password = '';
  return { type: 'postgres', url: url.toString() };
}

/**
 * What two stores that ran the same cycles must hold alike, table by table, as sorted JSON rows:
 * metaverse ids are replaced by the anchor that projected the object (each store numbers its own
 * rows), and what is another cloud's (its ids) or the clock's (timestamps) is left out.
 */
export function storeContents(db: Database): Map<string, string[]> {
  const anchorOf = new Map<number, string>();
  for (const r of db.prepare<[], { id: number; object_type: string; source_anchor: string }>('SELECT id, object_type, source_anchor FROM mv_objects').all()) {
    anchorOf.set(r.id, `${r.object_type}:${r.source_anchor}`);
  }
  const mv = (id: unknown) => (id === null || id === undefined ? null : (anchorOf.get(Number(id)) ?? `unknown mv ${String(id)}`));
  const rows = (sql: string, map: (r: Record<string, unknown>) => unknown) =>
    (db.prepare(sql).all() as Record<string, unknown>[]).map((r) => JSON.stringify(map(r))).sort();
  return new Map([
    ['cs_objects', rows('SELECT connector, anchor, object_type, dn, dn_norm, attrs, hash, pending, mv_id FROM cs_objects', (r) => ({ ...r, mv_id: mv(r.mv_id) }))],
    ['cs_members', rows('SELECT connector, group_anchor, member_dn, member_anchor FROM cs_members', (r) => r)],
    ['mv_objects', rows('SELECT id, attrs, deleted, pending_export FROM mv_objects', (r) => ({ ...r, id: mv(r.id) }))],
    ['mv_members', rows('SELECT group_id, member_id FROM mv_members', (r) => [mv(r.group_id), mv(r.member_id)])],
    ['mv_join_keys', rows('SELECT object_type, rule, value, mv_id FROM mv_join_keys', (r) => ({ ...r, mv_id: mv(r.mv_id) }))],
    // A group's exported resource names its members by their cloud ids, which each cloud draws
    // itself: its hash is compared only through the clouds' contents (by externalId).
    ['export_objects', rows('SELECT mv_id, object_type, cloud_id IS NOT NULL AS exported, exported_hash, last_error FROM export_objects', (r) => ({ ...r, mv_id: mv(r.mv_id), exported_hash: r.object_type === 'group' ? null : r.exported_hash }))],
    ['console_attr_index', rows('SELECT attr, value, mv_id FROM console_attr_index', (r) => ({ ...r, mv_id: mv(r.mv_id) }))],
    ['watermarks', rows('SELECT connector FROM watermarks', (r) => r)],
    ['runs', rows('SELECT r.profile, r.status, s.seq, s.connector, s.step, s.status AS step_status, s.adds, s.updates, s.deletes, s.unchanged, s.errors FROM runs r JOIN run_steps s ON s.run_id = r.id', (r) => r)],
    ['phs_users', rows('SELECT anchor, connector, last_error, CASE WHEN next_attempt_at IS NULL THEN 0 ELSE 1 END AS waiting FROM phs_users', (r) => r)],
  ]);
}

/** The differences between two stores' contents (storeContents), at most a few per table. */
export function diffStores(a: Database, b: Database, names = ['sqlite', 'postgres']): string[] {
  const x = storeContents(a);
  const y = storeContents(b);
  const out: string[] = [];
  for (const [table, rowsA] of x) {
    const rowsB = new Set(y.get(table) ?? []);
    const setA = new Set(rowsA);
    const onlyA = rowsA.filter((r) => !rowsB.has(r));
    const onlyB = [...rowsB].filter((r) => !setA.has(r));
    for (const r of onlyA.slice(0, 3)) out.push(`${table}: only in ${names[0]}: ${r}`);
    for (const r of onlyB.slice(0, 3)) out.push(`${table}: only in ${names[1]}: ${r}`);
    if (rowsA.length !== (y.get(table) ?? []).length) out.push(`${table}: ${rowsA.length} rows in ${names[0]}, ${(y.get(table) ?? []).length} in ${names[1]}`);
  }
  return out;
}

/**
 * The store a configuration names, to look into from a test: SQLite opened read-only (as a second
 * process would, e.g. after the service was killed), or the PostgreSQL database. Caller closes it.
 */
export function openConfiguredStore(configFile: string, opts: { write?: boolean } = {}): Database {
  const loaded = loadConfig(configFile);
  const where = storeLocation(loaded);
  return where.type === 'sqlite' ? new Sqlite(where.file, { readonly: opts.write !== true }) : openStore(where);
}
