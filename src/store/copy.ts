/**
 * Copies a SQLite store into an empty PostgreSQL store (`idsync store migrate`): every table the
 * migrations made, row for row, from one consistent snapshot of the source, then checks both sides
 * hold the same rows (count and an order-independent checksum per table). Sealed values (credentials,
 * password hashes) are copied as bytes: the same key file opens them on the new store.
 */
import { createHash } from 'node:crypto';
import { IdsyncError } from '../core/errors.js';
import type { Database } from './database.js';
import { PgDatabase } from './postgres/bridge.js';

export interface TableCopy {
  table: string;
  rows: number;
  /** sha256 over the rows, order-independent (sum of the rows' digests), the same on both sides. */
  checksum: string;
}

export interface CopyReport {
  tables: TableCopy[];
  rows: number;
}

/** Multi-row INSERTs of this many rows: few round trips, far below PostgreSQL's 65535 parameters. */
const BATCH_ROWS = 500;

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** The tables the source's migrations made, in creation order (parents before children). */
function sourceTables(src: Database): string[] {
  return (
    src.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> 'schema_migrations' ORDER BY rowid").pluck().all() as string[]
  ).filter((t) => !t.startsWith('temp.'));
}

function columnsOf(src: Database, table: string): string[] {
  return (src.prepare(`SELECT name FROM pragma_table_info(?) ORDER BY cid`).pluck().all(table) as string[]).filter((c) => c.length > 0);
}

/** One row's digest: its values in column order, typed, so 1 and '1' differ and bytes are bytes. */
function rowDigest(row: unknown[]): bigint {
  const h = createHash('sha256');
  for (const v of row) {
    if (v === null || v === undefined) h.update('n;');
    else if (Buffer.isBuffer(v)) h.update(`b${v.length}:`).update(v);
    else if (typeof v === 'number' || typeof v === 'bigint') h.update(`i${String(v)};`);
    else h.update(`s${Buffer.byteLength(String(v))}:`).update(String(v));
  }
  return h.digest().readBigUInt64BE(0);
}

/** Count and checksum of one table, the same computation on either store. */
export function tableChecksum(db: Database, table: string, columns: string[]): { rows: number; checksum: string } {
  let sum = 0n;
  let rows = 0;
  const list = columns.map(quoteIdent).join(', ');
  for (const row of db.prepare(`SELECT ${list} FROM ${quoteIdent(table)}`).raw().iterate() as IterableIterator<unknown[]>) {
    sum = (sum + rowDigest(row)) & 0xffffffffffffffffn;
    rows++;
  }
  return { rows, checksum: sum.toString(16).padStart(16, '0') };
}

/** Refuses a target that holds any row in a table of the source (a second migration, or the wrong database). */
export function assertEmptyTarget(dst: Database, tables: string[]): void {
  const full = tables.filter((t) => dst.prepare(`SELECT 1 FROM ${quoteIdent(t)} LIMIT 1`).get() !== undefined);
  if (full.length > 0) {
    throw new IdsyncError('STORE_FAILED', `the target database is not empty: ${full.join(', ')} already hold rows`, {
      hint: 'Migrate into a new, empty database (createdb), or drop this one first if it is a failed earlier attempt.',
    });
  }
}

export interface CopyOptions {
  onTable?: (table: string, rows: number) => void;
}

/**
 * Copies every table of `src` (SQLite, migrated) into `dst` (PostgreSQL, migrated with the same
 * migrations, empty). One read transaction on the source, one write transaction on the target: a
 * failure leaves the target as empty as it was.
 */
export function copyStore(src: Database, dst: PgDatabase, opts: CopyOptions = {}): CopyReport {
  const tables = sourceTables(src);
  assertEmptyTarget(dst, tables);
  const report: CopyReport = { tables: [], rows: 0 };
  const read = src.transaction(() => {
    dst.transaction(() => {
      for (const table of tables) {
        const cols = columnsOf(src, table);
        // Rows a trigger of the target made from a table copied before (the console's attribute
        // index) are derived data: copied rows that are already there are skipped.
        const derived = dst.prepare(`SELECT 1 FROM ${quoteIdent(table)} LIMIT 1`).get() !== undefined;
        const insertOf = (n: number) =>
          dst.prepare(
            `INSERT ${derived ? 'OR IGNORE ' : ''}INTO ${quoteIdent(table)} (${cols.map(quoteIdent).join(', ')}) VALUES ${Array.from({ length: n }, () => `(${cols.map(() => '?').join(', ')})`).join(', ')}`,
          );
        const full = insertOf(BATCH_ROWS);
        let batch: unknown[] = [];
        let n = 0;
        const flush = (): void => {
          const rows = batch.length / cols.length;
          if (rows === 0) return;
          (rows === BATCH_ROWS ? full : insertOf(rows)).run(...batch);
          batch = [];
        };
        for (const row of src.prepare(`SELECT ${cols.map(quoteIdent).join(', ')} FROM ${quoteIdent(table)}`).raw().iterate() as IterableIterator<unknown[]>) {
          batch.push(...row);
          n++;
          if (batch.length === BATCH_ROWS * cols.length) flush();
        }
        flush();
        // Identity columns: the next id continues after the copied ones (SQLite's AUTOINCREMENT did).
        const identity = dst
          .prepare("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? AND is_identity = 'YES'")
          .pluck()
          .all(table) as string[];
        for (const col of identity) {
          dst
            .prepare(`SELECT setval(pg_get_serial_sequence(?, ?), GREATEST(COALESCE(max(${quoteIdent(col)}), 0), 1), count(*) > 0) FROM ${quoteIdent(table)}`)
            .get(quoteIdent(table), col);
        }
        opts.onTable?.(table, n);
      }
    })();
    // Verified inside the source's snapshot, so a writer that went on meanwhile cannot make a false alarm.
    for (const table of tables) {
      const cols = columnsOf(src, table);
      const a = tableChecksum(src, table, cols);
      const b = tableChecksum(dst, table, cols);
      if (a.rows !== b.rows || a.checksum !== b.checksum) {
        throw new IdsyncError('STORE_FAILED', `verification failed for table ${table}: ${a.rows} rows (checksum ${a.checksum}) in SQLite, ${b.rows} (checksum ${b.checksum}) in PostgreSQL`, {
          hint: 'Nothing was switched: keep using the SQLite store, and report this with the table name.',
        });
      }
      report.tables.push({ table, rows: a.rows, checksum: a.checksum });
      report.rows += a.rows;
    }
  });
  read.deferred();
  return report;
}
