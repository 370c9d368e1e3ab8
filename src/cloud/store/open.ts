/**
 * Opens the cloud store from a description that can cross a worker-thread boundary: the main
 * thread and the SCIM worker (scim/host/) build their stores here, each with a connection (SQLite)
 * or pool (PostgreSQL) of its own.
 */
import { openDatabase, type Database, type Migration } from '../../store/database.js';
import { PostgresStore } from './postgres.js';
import type { CloudStore } from './sql.js';
import { SqliteStore } from './sqlite.js';

/** Where the store is. `password` travels with the description and is never printed. */
export type StoreSpec = { engine: 'sqlite'; file: string } | { engine: 'postgres'; url: string; password?: string };

export interface OpenStoreOptions {
  /** Applied before use; omit to use a schema another connection has migrated (the worker). */
  migrations?: { sqlite: Migration[]; postgres: Migration[] };
  /** SQLite: runs on the new connection before any statement is prepared (announceWrites). */
  onSqlite?: (db: Database) => void;
  /** PostgreSQL: pool size (default 10). */
  max?: number;
}

export async function openStore(spec: StoreSpec, options: OpenStoreOptions = {}): Promise<CloudStore> {
  if (spec.engine === 'postgres') {
    return PostgresStore.open(spec.url, options.migrations?.postgres ?? [], {
      ...(spec.password !== undefined ? { password: spec.password } : {}),
      ...(options.max !== undefined ? { max: options.max } : {}),
    });
  }
  const db = openDatabase(spec.file, options.migrations?.sqlite);
  options.onSqlite?.(db);
  return new SqliteStore(db);
}
