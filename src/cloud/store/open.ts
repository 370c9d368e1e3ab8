/**
 * Opens the cloud store from a description that can cross a worker-thread boundary: the main
 * thread and the SCIM worker (scim/host/) build their stores here, each with a connection (SQLite)
 * or pool (PostgreSQL) of its own.
 */
import { openDatabase, type Database, type Migration } from '../../store/database.js';
import { getCloudCredential } from './credentials.js';
import { PostgresStore, type PostgresTls } from './postgres.js';
import type { CloudStore } from './sql.js';
import { SqliteStore } from './sqlite.js';

/**
 * Where the store is. `password` travels with the description and is never printed; without it,
 * `credentialsDir` names the data directory whose sealed `database` credential is read when the
 * store connects (store/credentials.ts), so the worker reads it itself.
 */
export type StoreSpec = { engine: 'sqlite'; file: string } | { engine: 'postgres'; url: string; password?: string; credentialsDir?: string; tls?: PostgresTls };

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
    const password = spec.password ?? (spec.credentialsDir !== undefined ? getCloudCredential(spec.credentialsDir, 'database') : undefined);
    return PostgresStore.open(spec.url, options.migrations?.postgres ?? [], {
      ...(password !== undefined ? { password } : {}),
      ...(spec.tls ? { tls: spec.tls } : {}),
      ...(options.max !== undefined ? { max: options.max } : {}),
    });
  }
  const db = openDatabase(spec.file, options.migrations?.sqlite);
  options.onSqlite?.(db);
  return new SqliteStore(db);
}
