/**
 * The embedded store: one SQLite database (better-sqlite3, WAL) in the data directory.
 * Each module that keeps state declares its migrations next to its code; the list of them all is
 * assembled above the modules (src/app/migrations.ts), so store/ imports no feature and
 * the schema of a feature lives with the feature.
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { Sqlite } from './sqlite-driver.js';
import { migratePostgres, openPostgresDatabase, PgDatabase, type PostgresStoreOptions } from './postgres/open.js';
import { IdsyncError } from '../core/errors.js';

export type Database = BetterSqlite3.Database;

export interface Migration {
  /** Unique, ordered within its module: e.g. "engine/001". Never edit one that has shipped. */
  id: string;
  /** SQLite's DDL; on PostgreSQL it is translated (store/postgres/dialect.ts) unless `postgres` is given. */
  sql: string;
  /** PostgreSQL's text, where no translation of `sql` can do (triggers, SQLite-only functions). */
  postgres?: string;
}

export const DATABASE_FILE = 'idsync.db';

/** Which database a store is on. The modules' SQL is SQLite's; the PostgreSQL driver translates it. */
export type StoreDialect = 'sqlite' | 'postgres';

export function dialectOf(db: Database): StoreDialect {
  return db instanceof PgDatabase ? 'postgres' : 'sqlite';
}

/**
 * Where the sync service's store is: the SQLite file in the data directory (the default), or a
 * PostgreSQL database, reached through the synchronous bridge (store/postgres/bridge.ts), so every
 * module runs unchanged on both.
 */
export type StoreLocation = { type: 'sqlite'; file: string } | ({ type: 'postgres' } & PostgresStoreOptions);

export function openStore(location: StoreLocation, migrations: Migration[] = []): Database {
  if (location.type === 'sqlite') return openDatabase(location.file, migrations);
  return openPostgresDatabase(location, migrations);
}

/**
 * The database holds directory data (and sealed hashes): owner-only. The directory is made 0700
 * and the file created 0600 before SQLite opens it, so the -wal and -shm files SQLite creates
 * next to it take the same mode; files left by an older version are tightened here too.
 */
function makePrivate(file: string): void {
  const dir = path.dirname(file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  try {
    chmodSync(dir, 0o700);
    if (!existsSync(file)) closeSync(openSync(file, 'a', 0o600));
    for (const f of [file, `${file}-wal`, `${file}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
  } catch {
    // Not the owner (a shared or read-only mount): SQLite reports what matters when it opens.
  }
}

export function openDatabase(file: string, migrations: Migration[] = []): Database {
  if (file !== ':memory:') makePrivate(file);
  let db: Database;
  try {
    db = new Sqlite(file);
    // The busy timeout first: switching to WAL takes a lock, and another idsync process (a cycle,
    // `doctor`, the service) may hold it at this moment. Without the timeout that open fails at once.
    db.pragma('busy_timeout = 5000');
    switchToWal(db);
  } catch (err) {
    throw new IdsyncError('STORE_FAILED', `cannot open database ${file}: ${(err as Error).message}`, {
      hint: 'Check that the data directory exists, is writable by this user and the disk is not full.',
      cause: err,
    });
  }
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  migrate(db, migrations);
  return db;
}

/** How long the first openers of a new file keep trying to switch it to WAL (it stays WAL after). */
const WAL_SWITCH_WAIT_MS = 30_000;

/**
 * The switch to WAL of a new file needs the database to itself; SQLite may answer SQLITE_BUSY at
 * once while other processes open the same new file (16 at once under a loaded machine did), so the
 * switch is tried again for a while. A file already in WAL mode answers at the first try.
 */
function switchToWal(db: Database): void {
  const deadline = Date.now() + WAL_SWITCH_WAIT_MS;
  for (let pause = 10; ; pause = Math.min(pause * 2, 200)) {
    try {
      db.pragma('journal_mode = WAL');
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() >= deadline) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, pause); // a synchronous pause: the open is synchronous
    }
  }
}

export function migrate(db: Database, migrations: Migration[]): void {
  if (db instanceof PgDatabase) return migratePostgres(db, migrations);
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at TEXT NOT NULL)');
  const applied = new Set(db.prepare('SELECT id FROM schema_migrations').pluck().all() as string[]);
  const isApplied = db.prepare<[string]>('SELECT 1 FROM schema_migrations WHERE id = ?').pluck();
  // IMMEDIATE: the write lock first, then the check again, so two processes migrating one new
  // database at once never both apply a migration (the second found "table already exists").
  const apply = db.transaction((m: Migration) => {
    if (isApplied.get(m.id) !== undefined) return;
    db.exec(m.sql);
    db.prepare('INSERT INTO schema_migrations (id, applied_at) VALUES (?, ?)').run(m.id, new Date().toISOString());
  });
  for (const m of migrations) if (!applied.has(m.id)) apply.immediate(m);
}
